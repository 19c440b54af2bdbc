"""Credentials in URLs never reach a log: a logging Filter that masks them (kargo.redaction's one
rule) in every record a handler it is attached to receives.

kargo_ui/settings.py LOGGING attaches it to the root logger's console handler, where every
logger's records arrive (Django's included: LOGGING sends them there too). It changes the record
itself rather than a copy, so the handlers that see the record after it (pytest's caplog, say)
get the masked text as well: the message with its arguments merged in (`log.warning("... %s",
url)`), the traceback of `log.exception` and a stack trace. It never drops a record.
"""

import logging
import traceback

from kargo.redaction import redact


class RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler to report, masked
            message = str(record.msg)
            if record.args:
                message = f"{message} {record.args!r}"
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
