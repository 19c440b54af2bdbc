"""The claims the test provider gives: email, preferred_username and `groups` (the user's
Django groups), the claim Kargo's mappings use most."""

import base64
import json
import os
from pathlib import Path

import jwt
from oauth2_provider.oauth2_validators import OAuth2Validator


def rogue_key() -> str | None:
    """The key to sign ID tokens with instead of the provider's own, while the test puts one
    in OIDC_PROVIDER_ROGUE_KEY_FILE."""
    path = os.environ.get("OIDC_PROVIDER_ROGUE_KEY_FILE")
    return Path(path).read_text() if path and Path(path).is_file() else None


def segment(token: str, index: int) -> dict:
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class ClaimsValidator(OAuth2Validator):
    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope, "groups": "groups"}

    def get_additional_claims(self, request):
        user = request.user
        return {
            "email": user.email,
            "email_verified": True,
            "preferred_username": user.username,
            "groups": sorted(user.groups.values_list("name", flat=True)),
        }

    def finalize_id_token(self, id_token, token, token_handler, request):
        signed = super().finalize_id_token(id_token, token, token_handler, request)
        rogue = rogue_key()
        if rogue is None:
            return signed
        # The same header (so the provider's own kid) and claims, signed by another key.
        header = segment(signed, 0)
        return jwt.encode(segment(signed, 1), rogue, algorithm="RS256", headers=header)
