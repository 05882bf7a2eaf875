"""Token vault: encryption at rest for OAuth tokens.

Two stored formats:

* ``ar2:<kid>:<b64url(nonce + ciphertext + tag)>`` -- AES-256-GCM, written by
  this service. The key id lets keys rotate; the ``ar2:<kid>`` header is bound
  as associated data so it cannot be swapped.
* Legacy ``base64(iv + ciphertext)`` -- AES-256-CBC with PKCS#7 and key
  ``sha256(secret)``, written by the WordPress plugin. Read-only here; it has
  no MAC, so values are accepted only if padding and UTF-8 are valid, and are
  flagged for re-encryption.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["VaultError", "TokenVault", "legacy_encrypt"]

V2_PREFIX = "ar2"
_HKDF_INFO = b"aurareels-token-vault-v2"
_KID_PREFIX = b"aurareels-kid:"
_NONCE_LEN = 12
_TAG_LEN = 16
_BLOCK = 16
_EMPTY_SECRET_MSG = "AURAREELS_SOCIAL_ENCRYPTION_KEY is empty"

_KID_RE = re.compile(r"[0-9a-f]{8}")
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]+")
_B64STD_RE = re.compile(r"[A-Za-z0-9+/]+={0,2}")


class VaultError(Exception):
    """One clear error: value tampered, truncated, or not decryptable with any
    configured key. Its message never contains the plaintext, the ciphertext
    or any key (a key id, which is a public fingerprint, may appear)."""


@dataclass(frozen=True, repr=False)
class _Key:
    kid: str
    cbc_key: bytes
    gcm: AESGCM

    def __repr__(self) -> str:
        return f"_Key(kid={self.kid!r})"


def _secret_bytes(secret: str) -> bytes:
    if not isinstance(secret, str):
        raise TypeError("encryption secret must be a str")
    if secret == "":
        raise ValueError(_EMPTY_SECRET_MSG)
    try:
        return secret.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("encryption secret is not valid UTF-8 text") from None


def _legacy_key(secret: str) -> bytes:
    return hashlib.sha256(_secret_bytes(secret)).digest()


def _derive_key(secret: str) -> _Key:
    raw = _secret_bytes(secret)
    gcm_key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO
    ).derive(raw)
    kid = hashlib.sha256(_KID_PREFIX + gcm_key).hexdigest()[:8]
    return _Key(kid=kid, cbc_key=hashlib.sha256(raw).digest(), gcm=AESGCM(gcm_key))


def _utf8(text: str, what: str) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid UTF-8 text") from None


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes | None:
    """Strict, canonical base64url without padding; None if invalid."""
    if not _B64URL_RE.fullmatch(text) or len(text) % 4 == 1:
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return data if _b64url_encode(data) == text else None


def legacy_encrypt(secret: str, plaintext: str, iv: bytes | None = None) -> str:
    """Encrypt exactly as the WordPress plugin does (AES-256-CBC, PKCS#7,
    key = sha256(secret), stored = base64(iv + ciphertext))."""
    key = _legacy_key(secret)
    data = _utf8(plaintext, "plaintext")
    if iv is None:
        iv = os.urandom(_BLOCK)
    if not isinstance(iv, (bytes, bytearray)) or len(iv) != _BLOCK:
        raise ValueError("iv must be 16 bytes")
    padder = padding.PKCS7(128).padder()
    padded = padder.update(data) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(bytes(iv))).encryptor()
    ct = enc.update(padded) + enc.finalize()
    return base64.b64encode(bytes(iv) + ct).decode("ascii")


def _legacy_decrypt(cbc_key: bytes, iv: bytes, ct: bytes) -> str | None:
    dec = Cipher(algorithms.AES(cbc_key), modes.CBC(iv)).decryptor()
    padded = dec.update(ct) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        data = unpadder.update(padded) + unpadder.finalize()
        return data.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


class TokenVault:
    """Encrypts new values with the current secret; decrypts values written
    under the current secret, any old secret, or by the legacy plugin."""

    def __init__(self, current_secret: str, old_secrets: Sequence[str] = ()) -> None:
        if isinstance(old_secrets, str):
            raise TypeError("old_secrets must be a sequence of str, not a str")
        self._current = _derive_key(current_secret)
        keys = [self._current]
        seen = {current_secret}
        for secret in old_secrets:
            if secret in seen:
                continue
            seen.add(secret)
            keys.append(_derive_key(secret))
        self._keys: tuple[_Key, ...] = tuple(keys)

    @classmethod
    def from_settings(cls, settings) -> "TokenVault":
        return cls(
            settings.encryption_key,
            tuple(getattr(settings, "encryption_old_keys", ()) or ()),
        )

    @property
    def current_kid(self) -> str:
        return self._current.kid

    def __repr__(self) -> str:
        old = [k.kid for k in self._keys[1:]]
        return f"TokenVault(current_kid={self._current.kid!r}, old_kids={old!r})"

    # -- encryption -------------------------------------------------------

    def encrypt(self, plaintext: str) -> str:
        data = _utf8(plaintext, "plaintext")
        header = f"{V2_PREFIX}:{self._current.kid}"
        nonce = os.urandom(_NONCE_LEN)
        ct = self._current.gcm.encrypt(nonce, data, header.encode("ascii"))
        return f"{header}:{_b64url_encode(nonce + ct)}"

    def encrypt_optional(self, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        return self.encrypt(v)

    # -- decryption -------------------------------------------------------

    def decrypt(self, stored: str) -> str:
        if not isinstance(stored, str):
            raise VaultError("stored value is not a string")
        stored = stored.strip()
        if not stored:
            raise VaultError("stored value is empty")
        if ":" in stored:
            return self._decrypt_v2(stored)
        return self._decrypt_legacy(stored)

    def decrypt_optional(self, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        return self.decrypt(v)

    def _split_v2(self, stored: str) -> tuple[str, str]:
        parts = stored.split(":")
        if len(parts) != 3 or parts[0] != V2_PREFIX:
            raise VaultError("stored value has an unsupported format")
        kid, body = parts[1], parts[2]
        if not _KID_RE.fullmatch(kid):
            raise VaultError("stored value has a malformed key id")
        return kid, body

    def _decrypt_v2(self, stored: str) -> str:
        kid, body = self._split_v2(stored)
        candidates = [k for k in self._keys if k.kid == kid]
        if not candidates:
            raise VaultError(f"no configured key matches key id {kid}")
        raw = _b64url_decode(body)
        if raw is None or len(raw) < _NONCE_LEN + _TAG_LEN:
            raise VaultError("stored value is malformed or truncated")
        nonce, ct = raw[:_NONCE_LEN], raw[_NONCE_LEN:]
        aad = f"{V2_PREFIX}:{kid}".encode("ascii")
        for key in candidates:
            try:
                data = key.gcm.decrypt(nonce, ct, aad)
            except InvalidTag:
                continue
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                raise VaultError("decrypted value is not valid UTF-8") from None
        raise VaultError("stored value failed authentication (tampered or wrong key)")

    def _decrypt_legacy(self, stored: str) -> str:
        raw = None
        if _B64STD_RE.fullmatch(stored) and len(stored) % 4 == 0:
            try:
                raw = base64.b64decode(stored, validate=True)
            except (binascii.Error, ValueError):
                raw = None
        if raw is None or len(raw) < 2 * _BLOCK or len(raw) % _BLOCK:
            raise VaultError("stored value is malformed or truncated")
        iv, ct = raw[:_BLOCK], raw[_BLOCK:]
        # No MAC in this format: a wrong key is detected only by invalid
        # padding or invalid UTF-8. Current secret first, then old ones.
        for key in self._keys:
            text = _legacy_decrypt(key.cbc_key, iv, ct)
            if text is not None:
                return text
        raise VaultError("legacy value could not be decrypted with any configured key")

    # -- rotation ---------------------------------------------------------

    def needs_reencrypt(self, stored: str) -> bool:
        """True for legacy values and ar2 values under a non-current key id.
        Does not decrypt; a malformed ar2 header raises VaultError."""
        if not isinstance(stored, str):
            raise VaultError("stored value is not a string")
        stored = stored.strip()
        if ":" not in stored:
            return True
        kid, _ = self._split_v2(stored)
        return kid != self._current.kid

    def reencrypt(self, stored: str) -> str:
        return self.encrypt(self.decrypt(stored))
