"""The expr-lang grammar, as a lark LALR parser."""

import functools

from lark import Lark

# Precedence follows expr-lang's parser/operator table (lowest first):
#   ?: ternary, | pipe, or/||, and/&&, comparisons (==, <, in, contains, matches, ...; chained
#   like a < b < c), .. range, + -, unary not/!, * / %, unary - +, ** ^, ?? and finally
#   postfix member access, indexing, slicing and calls.
# Note expr-lang's unary `not` binds looser than `*` (`!a * b` is `!(a * b)`) but tighter than
# `+` and comparisons (`!a == b` is `(!a) == b`); the levels below reproduce that.
GRAMMAR = r"""
?start: expr

?expr: pipe
     | pipe "?" expr ":" expr               -> ternary

?pipe: or_expr
     | pipe "|" NAME "(" [arguments] ")"    -> pipe_call

?or_expr: and_expr
        | or_expr _OR and_expr              -> or_op

?and_expr: comparison
         | and_expr _AND comparison         -> and_op

?comparison: range_expr
           | range_expr (comp_op range_expr)+ -> compare

!comp_op: "==" | "!=" | "<" | "<=" | ">" | ">=" | [NOT] (IN | CONTAINS | STARTS | ENDS | MATCHES)

?range_expr: sum
           | sum ".." sum                   -> range_op

?sum: not_expr
    | sum "+" not_expr                      -> add
    | sum "-" not_expr                      -> sub

?not_expr: product
         | ("!" | NOT) not_expr             -> not_op

?product: unary
        | product "*" unary                 -> mul
        | product "/" unary                 -> div
        | product "%" unary                 -> mod

?unary: power
      | "-" unary                           -> neg
      | "+" unary                           -> pos

?power: coalesce
      | coalesce ("**" | "^") unary         -> pow

?coalesce: postfix
         | coalesce "??" postfix            -> coalesce

?postfix: atom
        | atom trailer+                     -> chain

trailer: "." NAME                           -> attr
       | "?." NAME                          -> opt_attr
       | "[" expr "]"                       -> index
       | "?." "[" expr "]"                  -> opt_index
       | "[" [expr] ":" [expr] "]"          -> slice
       | "(" [arguments] ")"                -> call

arguments: expr ("," expr)* ","?

?atom: INT                                  -> int_lit
     | FLOAT                                -> float_lit
     | STRING                               -> string_lit
     | "true"                               -> true_lit
     | "false"                              -> false_lit
     | "nil"                                -> nil_lit
     | NAME                                 -> name
     | POINTER                              -> pointer
     | "." NAME                             -> dot_member
     | "(" expr ")"
     | "[" [expr ("," expr)* ","?] "]"      -> array
     | "{" [pair ("," pair)* ","?] "}"      -> map
     | "{" expr "}"                         -> closure

pair: (NAME | STRING | INT) ":" expr
    | "(" expr ")" ":" expr                 -> computed_pair

// Word operators are whole words only (`a orb` must not lex as `a or b`); the raised priority
// makes `not` an operator rather than a name where both could start an operand.
_OR.2: "||" | /or\b/
_AND.2: "&&" | /and\b/
NOT.2: /not\b/
IN.2: /in\b/
CONTAINS.2: /contains\b/
STARTS.2: /startsWith\b/
ENDS.2: /endsWith\b/
MATCHES.2: /matches\b/

NAME: /[A-Za-z_$][A-Za-z0-9_$]*/
POINTER: /#[A-Za-z_]*/
INT: /0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|[0-9][0-9_]*/
FLOAT: /[0-9][0-9_]*\.[0-9][0-9_]*(?:[eE][+-]?[0-9]+)?|\.[0-9][0-9_]*(?:[eE][+-]?[0-9]+)?|[0-9][0-9_]*[eE][+-]?[0-9]+/
STRING: /"(?:[^"\\]|\\.)*"/s | /'(?:[^'\\]|\\.)*'/s | /`[^`]*`/

%ignore /\s+/
%ignore /\/\/[^\n]*/
%ignore /\/\*(?:.|\n)*?\*\//
"""


@functools.cache
def parser() -> Lark:
    # Built on first use: building the LALR tables costs ~0.1 s that importers shouldn't pay.
    return Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=True)
