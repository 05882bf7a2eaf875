import base64
import hashlib
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bridge.crypto import TokenVault, VaultError, legacy_encrypt

SECRET_A = "secret-A-3f9c1b7e-correct-horse"
SECRET_B = "secret-B-8a2d4c6f-battery-staple"
SECRET_C = "secret-C-unrelated-key"
TOKEN = "EAAGm0PX4ZCpsBAKZCZA-access-token-value-1234567890"

# Generated once with the openssl command line, byte-for-byte what the PHP
# plugin stores (openssl_encrypt AES-256-CBC, OPENSSL_RAW_DATA, base64(iv.ct)):
#   K=$(printf '%s' 'wp-plugin-secret-2024' | openssl dgst -sha256 -hex | awk '{print $NF}')
#   IV=000102030405060708090a0b0c0d0e0f
#   (printf '%s' $IV | xxd -r -p; printf 'hello-token' \
#     | openssl enc -aes-256-cbc -K $K -iv $IV) | base64 -w0
OPENSSL_SECRET = "wp-plugin-secret-2024"
OPENSSL_VECTORS = [
    ("hello-token", "AAECAwQFBgcICQoLDA0OD8vHEKvzxCwQu+Neea4GZSk="),
    (
        "EAAGm0PX4ZCpsBA-ünïcødé-token/exactly-32-bytes!!",
        "8OHSw7Sllod4aVpLPC0eD5i9wviMqQpPrKrQxOwTgbmNTx2Qxp/6u2/T35Xau9iByLTngm7hUVxhRS+tmt4zf1Apt7U//fEq6TIxo1b0x0o=",
    ),
]


def reference_cbc(secret: str, plaintext: str, iv: bytes) -> str:
    """Independent PHP-equivalent implementation from raw primitives."""
    key = hashlib.sha256(secret.encode("utf-8")).digest()
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext.encode("utf-8")) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + enc.update(padded) + enc.finalize()).decode()


def raw_cbc(secret: str, raw_padded: bytes, iv: bytes) -> str:
    key = hashlib.sha256(secret.encode("utf-8")).digest()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + enc.update(raw_padded) + enc.finalize()).decode()


def expected_kid(secret: str) -> str:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"aurareels-token-vault-v2"
    ).derive(secret.encode("utf-8"))
    return hashlib.sha256(b"aurareels-kid:" + key).hexdigest()[:8]


def b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64url_encode(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def assert_clean(exc: VaultError, *forbidden: str) -> None:
    msg = str(exc)
    for item in forbidden:
        assert item not in msg
    for secret in (SECRET_A, SECRET_B, SECRET_C, OPENSSL_SECRET):
        assert secret not in msg


@pytest.fixture
def vault():
    return TokenVault(SECRET_A)


# -- ar2 / GCM ---------------------------------------------------------------


@pytest.mark.parametrize(
    "plaintext",
    [
        TOKEN,
        "x",
        "токен-🔑-トークン-ünïcødé",
        "A" * 10_000,
        "ya29." + "a0AfH6SMB-long_refresh/token+with=odd:chars" * 50,
    ],
)
def test_gcm_round_trip(vault, plaintext):
    stored = vault.encrypt(plaintext)
    assert stored.startswith("ar2:")
    if len(plaintext) > 8:
        assert plaintext not in stored
    assert vault.decrypt(stored) == plaintext


def test_ar2_format(vault):
    stored = vault.encrypt(TOKEN)
    prefix, kid, body = stored.split(":")
    assert prefix == "ar2"
    assert kid == expected_kid(SECRET_A) == vault.current_kid
    assert "=" not in body
    raw = b64url_decode(body)
    # 12-byte nonce + ciphertext (same length as plaintext) + 16-byte tag
    assert len(raw) == 12 + len(TOKEN.encode()) + 16


def test_encryptions_differ(vault):
    a, b = vault.encrypt(TOKEN), vault.encrypt(TOKEN)
    assert a != b
    assert vault.decrypt(a) == vault.decrypt(b) == TOKEN


def test_independent_gcm_decrypt_of_vault_output(vault):
    """The ar2 body decrypts with raw AESGCM and the header as AAD."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    stored = vault.encrypt(TOKEN)
    header, body = stored.rsplit(":", 1)
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"aurareels-token-vault-v2"
    ).derive(SECRET_A.encode())
    raw = b64url_decode(body)
    assert AESGCM(key).decrypt(raw[:12], raw[12:], header.encode()).decode() == TOKEN


def test_vault_repr_hides_secrets():
    v = TokenVault(SECRET_A, [SECRET_B])
    assert SECRET_A not in repr(v) and SECRET_B not in repr(v)


# -- legacy CBC ----------------------------------------------------------------


@pytest.mark.parametrize("plaintext, stored", OPENSSL_VECTORS)
def test_legacy_openssl_hardcoded_vectors(plaintext, stored):
    assert TokenVault(OPENSSL_SECRET).decrypt(stored) == plaintext
    iv = base64.b64decode(stored)[:16]
    assert legacy_encrypt(OPENSSL_SECRET, plaintext, iv) == stored
    assert reference_cbc(OPENSSL_SECRET, plaintext, iv) == stored


@pytest.mark.parametrize(
    "plaintext",
    ["hello-token", "", "exactly-16-bytes", "ünïcødé-🔑", TOKEN * 20],
)
def test_legacy_known_answer_independent(plaintext):
    iv = bytes(range(16))
    expected = reference_cbc(SECRET_A, plaintext, iv)
    assert legacy_encrypt(SECRET_A, plaintext, iv) == expected
    assert TokenVault(SECRET_A).decrypt(expected) == plaintext


def test_legacy_random_iv():
    a, b = legacy_encrypt(SECRET_A, TOKEN), legacy_encrypt(SECRET_A, TOKEN)
    assert a != b
    assert base64.b64decode(a)[:16] != base64.b64decode(b)[:16]
    v = TokenVault(SECRET_A)
    assert v.decrypt(a) == v.decrypt(b) == TOKEN


def test_legacy_bad_iv_length():
    with pytest.raises(ValueError):
        legacy_encrypt(SECRET_A, TOKEN, b"short")


def test_legacy_decrypts_with_old_secret():
    stored = legacy_encrypt(SECRET_A, TOKEN)
    assert TokenVault(SECRET_B, [SECRET_C, SECRET_A]).decrypt(stored) == TOKEN


def test_legacy_wrong_key_raises():
    stored = legacy_encrypt(SECRET_A, TOKEN, bytes(16))
    with pytest.raises(VaultError) as exc:
        TokenVault(SECRET_B, [SECRET_C]).decrypt(stored)
    assert_clean(exc.value, TOKEN, stored)


def test_legacy_bad_padding_raises():
    iv = bytes(16)
    # last byte 0x05 but preceding bytes are not all 0x05
    stored = raw_cbc(SECRET_A, b"token-value-abc\x05", iv)
    with pytest.raises(VaultError) as exc:
        TokenVault(SECRET_A).decrypt(stored)
    assert_clean(exc.value, "token-value", stored)
    zero_pad = raw_cbc(SECRET_A, b"token-value-abcd" + b"\x00" * 16, iv)
    with pytest.raises(VaultError):
        TokenVault(SECRET_A).decrypt(zero_pad)


def test_legacy_non_utf8_plaintext_raises():
    padded = b"\xff\xfe\xfd-bad-u8" + b"\x06" * 6  # valid PKCS#7, invalid UTF-8
    assert len(padded) == 16
    stored = raw_cbc(SECRET_A, padded, bytes(16))
    with pytest.raises(VaultError):
        TokenVault(SECRET_A).decrypt(stored)


def test_legacy_tampered_ciphertext_raises():
    stored = legacy_encrypt(SECRET_A, "short-tok", bytes(16))
    raw = bytearray(base64.b64decode(stored))
    raw[-1] ^= 0x80  # corrupts the final block -> padding or UTF-8 invalid
    with pytest.raises(VaultError):
        TokenVault(SECRET_A).decrypt(base64.b64encode(bytes(raw)).decode())


@pytest.mark.parametrize(
    "stored",
    [
        "AAECAwQFBgcICQoLDA0ODw==",  # IV only, no ciphertext
        "AAECAwQFBgcICQoLDA0OD8vHEKvzxCwQu+Neea4G",  # not a block multiple
        "AAECAwQFBgcICQoLDA0OD8vHEKvzxCwQu+Neea4GZSk",  # missing padding
        "not base64 at all!",
        "@@@@",
        "   ",
        "",
    ],
)
def test_legacy_garbage_raises(stored):
    with pytest.raises(VaultError) as exc:
        TokenVault(OPENSSL_SECRET).decrypt(stored)
    assert_clean(exc.value, "hello-token")


# -- tamper detection for ar2 -----------------------------------------------


def _flip(stored: str, index: int) -> str:
    header, body = stored.rsplit(":", 1)
    raw = bytearray(b64url_decode(body))
    raw[index] ^= 0x01
    return f"{header}:{b64url_encode(bytes(raw))}"


@pytest.mark.parametrize("index", [0, 11, 12, 20, -17, -1])
def test_ar2_flipped_byte_raises(vault, index):
    stored = vault.encrypt(TOKEN)
    bad = _flip(stored, index)
    with pytest.raises(VaultError) as exc:
        vault.decrypt(bad)
    assert_clean(exc.value, TOKEN, stored.split(":")[2], bad.split(":")[2])


def test_ar2_changed_kid_raises(vault):
    stored = vault.encrypt(TOKEN)
    _, kid, body = stored.split(":")
    other = "0" * 8 if kid != "0" * 8 else "1" * 8
    with pytest.raises(VaultError) as exc:
        vault.decrypt(f"ar2:{other}:{body}")
    assert_clean(exc.value, TOKEN, body)


def test_ar2_swapped_header_raises():
    """Body from key A relabelled with the kid of B (both keys configured)."""
    a, b = TokenVault(SECRET_A), TokenVault(SECRET_B)
    both = TokenVault(SECRET_B, [SECRET_A])
    body_a = a.encrypt(TOKEN).split(":")[2]
    swapped = f"ar2:{b.current_kid}:{body_a}"
    with pytest.raises(VaultError) as exc:
        both.decrypt(swapped)
    assert_clean(exc.value, TOKEN, body_a)


def test_ar2_header_is_aad():
    """A correct key under a different header must not authenticate."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    v = TokenVault(SECRET_A)
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"aurareels-token-vault-v2"
    ).derive(SECRET_A.encode())
    nonce = bytes(12)
    no_aad = AESGCM(key).encrypt(nonce, TOKEN.encode(), None)
    with pytest.raises(VaultError):
        v.decrypt(f"ar2:{v.current_kid}:{b64url_encode(nonce + no_aad)}")
    with_aad = AESGCM(key).encrypt(nonce, TOKEN.encode(), f"ar2:{v.current_kid}".encode())
    assert v.decrypt(f"ar2:{v.current_kid}:{b64url_encode(nonce + with_aad)}") == TOKEN


@pytest.mark.parametrize("keep", [0, 5, 16, 27, -1])
def test_ar2_truncated_raises(vault, keep):
    stored = vault.encrypt(TOKEN)
    header, body = stored.rsplit(":", 1)
    cut = body[:keep]
    with pytest.raises(VaultError) as exc:
        vault.decrypt(f"{header}:{cut}")
    assert_clean(exc.value, TOKEN, body)


def test_ar2_appended_data_raises(vault):
    stored = vault.encrypt(TOKEN)
    with pytest.raises(VaultError):
        vault.decrypt(stored + "AAAA")


@pytest.mark.parametrize(
    "stored",
    [
        "ar2:",
        "ar2::",
        "ar2:abcdef12",
        "ar2:ABCDEF12:AAAA",
        "ar2:abc:AAAA",
        "ar2:abcdef12:!!!!",
        "ar2:abcdef12:AAAA:extra",
        "ar3:abcdef12:AAAA",
        "foo:bar",
        ":",
    ],
)
def test_ar2_garbage_raises(vault, stored):
    with pytest.raises(VaultError) as exc:
        vault.decrypt(stored)
    assert_clean(exc.value)


def test_ar2_non_canonical_base64_raises(vault):
    stored = vault.encrypt(TOKEN)
    header, body = stored.rsplit(":", 1)
    with pytest.raises(VaultError):
        vault.decrypt(f"{header}:{body}==")
    with pytest.raises(VaultError):
        vault.decrypt(f"{header}:{body.replace('-', '+').replace('_', '/')}" + "+/")


def test_ar2_non_utf8_plaintext_raises():
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    v = TokenVault(SECRET_A)
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"aurareels-token-vault-v2"
    ).derive(SECRET_A.encode())
    header = f"ar2:{v.current_kid}"
    ct = AESGCM(key).encrypt(bytes(12), b"\xff\xfe-bad", header.encode())
    with pytest.raises(VaultError):
        v.decrypt(f"{header}:{b64url_encode(bytes(12) + ct)}")


def test_ar2_wrong_vault_raises():
    stored = TokenVault(SECRET_A).encrypt(TOKEN)
    with pytest.raises(VaultError) as exc:
        TokenVault(SECRET_B, [SECRET_C]).decrypt(stored)
    assert_clean(exc.value, TOKEN, stored.split(":")[2])


def test_non_string_raises(vault):
    with pytest.raises(VaultError):
        vault.decrypt(b"ar2:abc")  # type: ignore[arg-type]
    with pytest.raises(VaultError):
        vault.decrypt(None)  # type: ignore[arg-type]


# -- rotation -----------------------------------------------------------------


def test_decrypt_with_old_key():
    stored = TokenVault(SECRET_A).encrypt(TOKEN)
    rotated = TokenVault(SECRET_B, old_secrets=[SECRET_A])
    assert rotated.decrypt(stored) == TOKEN
    with pytest.raises(VaultError):
        TokenVault(SECRET_B).decrypt(stored)


def test_needs_reencrypt():
    a = TokenVault(SECRET_A)
    rotated = TokenVault(SECRET_B, [SECRET_A])
    current = rotated.encrypt(TOKEN)
    old = a.encrypt(TOKEN)
    legacy_current = legacy_encrypt(SECRET_B, TOKEN)
    legacy_old = legacy_encrypt(SECRET_A, TOKEN)
    assert rotated.needs_reencrypt(current) is False
    assert rotated.needs_reencrypt(old) is True
    assert rotated.needs_reencrypt(legacy_current) is True
    assert rotated.needs_reencrypt(legacy_old) is True
    assert a.needs_reencrypt(old) is False


def test_needs_reencrypt_malformed_ar2_raises(vault):
    with pytest.raises(VaultError):
        vault.needs_reencrypt("ar2:nothex!!:AAAA")


@pytest.mark.parametrize(
    "make",
    [
        lambda: TokenVault(SECRET_A).encrypt(TOKEN),
        lambda: legacy_encrypt(SECRET_A, TOKEN),
        lambda: legacy_encrypt(SECRET_B, TOKEN),
        lambda: TokenVault(SECRET_B).encrypt(TOKEN),
    ],
)
def test_reencrypt(make):
    rotated = TokenVault(SECRET_B, [SECRET_A])
    stored = make()
    fresh = rotated.reencrypt(stored)
    assert fresh.startswith(f"ar2:{rotated.current_kid}:")
    assert rotated.needs_reencrypt(fresh) is False
    assert rotated.decrypt(fresh) == TOKEN
    assert TokenVault(SECRET_B).decrypt(fresh) == TOKEN  # old key no longer needed


def test_reencrypt_undecryptable_raises():
    stored = TokenVault(SECRET_C).encrypt(TOKEN)
    rotated = TokenVault(SECRET_B, [SECRET_A])
    assert rotated.needs_reencrypt(stored) is True
    with pytest.raises(VaultError) as exc:
        rotated.reencrypt(stored)
    assert_clean(exc.value, TOKEN)


def test_duplicate_and_current_in_old_secrets():
    v = TokenVault(SECRET_A, [SECRET_A, SECRET_B, SECRET_B])
    assert v.decrypt(TokenVault(SECRET_B).encrypt(TOKEN)) == TOKEN
    assert v.decrypt(v.encrypt(TOKEN)) == TOKEN


# -- optional helpers, settings, empty secret -----------------------------------


def test_optional_helpers(vault):
    assert vault.encrypt_optional(None) is None
    assert vault.encrypt_optional("") is None
    assert vault.decrypt_optional(None) is None
    assert vault.decrypt_optional("") is None
    stored = vault.encrypt_optional(TOKEN)
    assert stored is not None and stored.startswith("ar2:")
    assert vault.decrypt_optional(stored) == TOKEN
    with pytest.raises(VaultError):
        vault.decrypt_optional("ar2:garbage")


def test_from_settings():
    old = TokenVault(SECRET_A).encrypt(TOKEN)
    settings = SimpleNamespace(encryption_key=SECRET_B, encryption_old_keys=(SECRET_A,))
    v = TokenVault.from_settings(settings)
    assert v.current_kid == expected_kid(SECRET_B)
    assert v.decrypt(old) == TOKEN
    assert v.needs_reencrypt(old) is True


def test_empty_secret_rejected():
    with pytest.raises(ValueError, match="^AURAREELS_SOCIAL_ENCRYPTION_KEY is empty$"):
        TokenVault("")
    with pytest.raises(ValueError, match="AURAREELS_SOCIAL_ENCRYPTION_KEY is empty"):
        TokenVault.from_settings(SimpleNamespace(encryption_key="", encryption_old_keys=()))
    with pytest.raises(ValueError, match="AURAREELS_SOCIAL_ENCRYPTION_KEY is empty"):
        legacy_encrypt("", TOKEN)


def test_vault_error_is_exception():
    assert issubclass(VaultError, Exception)
    assert not issubclass(VaultError, ValueError)
