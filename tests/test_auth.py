import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from werkzeug.datastructures import Headers

from bridge.auth import (
    AuthError,
    bearer_token,
    check_internal_key,
    decode_wp_jwt,
    internal_key_from_headers,
)

# 64 bytes, long enough for HS512 without key-length warnings.
SECRET = "wp-secret-0123456789abcdef0123456789abcdef0123456789abcdef-xyz!!"
OTHER_SECRET = "another-secret-fedcba9876543210fedcba9876543210fedcba98765432!!"
WP_URL = "https://aurareels.example"
INTERNAL_KEY = "internal-key-7c1e2f9a4b3d8e6f0a1b2c3d4e5f6a7b"

CONFIG = {"secret": SECRET, "issuer": WP_URL}


def b64url(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(**overrides):
    """Claims as "JWT Authentication for WP REST API" issues them."""
    now = int(time.time())
    base = {"iss": WP_URL, "iat": now, "nbf": now, "exp": now + 3600, "data": {"user": {"id": "7"}}}
    for key, value in overrides.items():
        if value is ...:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def sign(payload, *, secret=SECRET, algorithm="HS256"):
    return jwt.encode(payload, secret, algorithm=algorithm)


def sign_raw(payload, *, secret=SECRET) -> str:
    """HS256 over any JSON payload, including claims the encoder would reject."""
    signing_input = f"{b64url({'alg': 'HS256', 'typ': 'JWT'})}.{b64url(payload)}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def refused(token, **config) -> AuthError:
    """Decode, expecting a refusal; the error must never echo the token or the secret."""
    with pytest.raises(AuthError) as info:
        decode_wp_jwt(token, **{**CONFIG, **config})
    err = info.value
    assert err.status == 401
    for text in (str(err), err.message, repr(err), str(err.args)):
        if token:
            assert token not in text
        assert SECRET not in text
    assert err.message.endswith(".")
    return err


# --- the three WordPress producers ------------------------------------------------------------


def test_string_user_id_jwt_authentication_for_wp_rest_api():
    assert decode_wp_jwt(sign(claims()), **CONFIG) == 7


def test_integer_user_id_jwt_auth_plugin():
    now = int(time.time())
    token = sign({"iss": WP_URL, "iat": now, "nbf": now, "exp": now + 300, "data": {"user": {"id": 42}}})
    result = decode_wp_jwt(token, **CONFIG)
    assert result == 42 and type(result) is int


@pytest.mark.parametrize("raw", [15, "15"])
def test_top_level_id_simple_jwt_login(raw):
    now = int(time.time())
    token = sign({"iss": WP_URL, "iat": now, "exp": now + 600, "id": raw, "username": "editor"})
    assert decode_wp_jwt(token, **CONFIG) == 15


def test_other_configured_hs_algorithm():
    token = sign(claims(), algorithm="HS384")
    assert decode_wp_jwt(token, **CONFIG, algorithm="HS384") == 7


# --- time ---------------------------------------------------------------------------------------


def test_expired():
    now = int(time.time())
    token = sign(claims(iat=now - 7200, nbf=now - 7200, exp=now - 600))
    assert refused(token).code == "token_expired"


def test_expired_within_leeway_is_accepted():
    now = int(time.time())
    token = sign(claims(iat=now - 3600, nbf=now - 3600, exp=now - 30))
    assert decode_wp_jwt(token, **CONFIG) == 7
    assert decode_wp_jwt(token, **CONFIG, leeway=60) == 7


def test_expired_beyond_a_smaller_leeway():
    now = int(time.time())
    token = sign(claims(iat=now - 3600, nbf=now - 3600, exp=now - 30))
    assert refused(token, leeway=0).code == "token_expired"


def test_nbf_in_the_future():
    now = int(time.time())
    token = sign(claims(nbf=now + 3600, exp=now + 7200))
    assert refused(token).code == "token_not_yet_valid"


def test_iat_in_the_future():
    now = int(time.time())
    token = sign(claims(iat=now + 3600, nbf=..., exp=now + 7200))
    assert refused(token).code == "token_not_yet_valid"


def test_nbf_slightly_ahead_within_leeway_is_accepted():
    now = int(time.time())
    assert decode_wp_jwt(sign(claims(iat=now + 20, nbf=now + 20)), **CONFIG) == 7


def test_no_exp():
    assert refused(sign(claims(exp=...))).code == "invalid_token"


def test_non_numeric_exp():
    assert refused(sign(claims(exp="tomorrow"))).code == "invalid_token"


# --- signature and algorithm ----------------------------------------------------------------------


def test_wrong_key():
    assert refused(sign(claims(), secret=OTHER_SECRET)).code == "invalid_token"


def test_alg_none():
    token = f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(claims())}."
    assert refused(token).code == "invalid_token"


def test_alg_none_with_uppercase_and_no_signature_section():
    payload = b64url(claims())
    for header in ({"alg": "None", "typ": "JWT"}, {"alg": "NONE"}):
        assert refused(f"{b64url(header)}.{payload}.").code == "invalid_token"
    assert refused(f"{b64url({'alg': 'none'})}.{payload}").code == "invalid_token"


def test_hs512_token_when_hs256_configured():
    # Same secret: only the configured-algorithm rule refuses it.
    token = sign(claims(), algorithm="HS512")
    assert decode_wp_jwt(token, **CONFIG, algorithm="HS512") == 7
    assert refused(token, algorithm="HS256").code == "invalid_token"


def test_tampered_payload():
    header, _, signature = sign(claims()).split(".")
    forged = f"{header}.{b64url(claims(data={'user': {'id': '1'}}))}.{signature}"
    assert refused(forged).code == "invalid_token"


@pytest.mark.parametrize(
    "token",
    ["garbage", "not.a.jwt", "a.b.c.d", "....", "eyJhbGciOiJIUzI1NiJ9.%%%.abc", "Bearer x", "x" * 10000],
)
def test_garbage(token):
    assert refused(token).code == "invalid_token"


def test_payload_that_is_not_an_object():
    assert refused(sign_raw(b"[1,2,3]")).code == "invalid_token"


def test_raw_signer_matches_library():
    assert decode_wp_jwt(sign_raw(claims()), **CONFIG) == 7


@pytest.mark.parametrize("token", ["", "   ", None])
def test_empty_token(token):
    assert refused(token).code == "missing_token"


# --- issuer -------------------------------------------------------------------------------------


def test_wrong_issuer():
    assert refused(sign(claims(iss="https://evil.example"))).code == "invalid_issuer"


@pytest.mark.parametrize("iss", ["https://aurareels.example.evil", "http://aurareels.example", WP_URL + "//"])
def test_near_miss_issuers(iss):
    assert refused(sign(claims(iss=iss))).code == "invalid_issuer"


@pytest.mark.parametrize("iss", [..., 123, None, ["https://aurareels.example"]])
def test_missing_or_non_string_issuer(iss):
    assert refused(sign_raw(claims(iss=iss))).code == "invalid_issuer"


def test_issuer_with_trailing_slash_is_accepted():
    assert decode_wp_jwt(sign(claims(iss=WP_URL + "/")), **CONFIG) == 7


def test_configured_issuer_with_trailing_slash_is_accepted():
    assert decode_wp_jwt(sign(claims()), secret=SECRET, issuer=WP_URL + "/") == 7
    assert decode_wp_jwt(sign(claims(iss=WP_URL + "/")), secret=SECRET, issuer=WP_URL + "/") == 7


def test_expiry_reported_before_issuer():
    now = int(time.time())
    token = sign(claims(iss="https://evil.example", iat=now - 7200, nbf=now - 7200, exp=now - 600))
    assert refused(token).code == "token_expired"


# --- user id ------------------------------------------------------------------------------------


def test_no_user_id():
    assert refused(sign(claims(data=...))).code == "missing_user"


@pytest.mark.parametrize(
    "data",
    [{}, {"user": {}}, {"user": None}, {"user": "7"}, "7", None],
)
def test_no_user_id_shapes(data):
    assert refused(sign(claims(data=data))).code == "missing_user"


def test_non_numeric_user_id():
    assert refused(sign(claims(data={"user": {"id": "abc"}}))).code == "missing_user"


@pytest.mark.parametrize(
    "raw",
    ["abc", "", " 7", "7 ", "+7", "-7", "7.0", "0x7", "٧", "0", 0, -3, True, False, 7.0, None, [7], {"id": 7},
     2**64, str(2**64)],
)
def test_unusable_user_ids(raw):
    assert refused(sign(claims(data={"user": {"id": raw}}))).code == "missing_user"
    now = int(time.time())
    top_level = sign({"iss": WP_URL, "exp": now + 600, "id": raw})
    assert refused(top_level).code == "missing_user"


def test_unusable_data_user_id_does_not_fall_back_to_top_level_id():
    assert refused(sign(claims(data={"user": {"id": "abc"}}, id=7))).code == "missing_user"


def test_leading_zeros_and_large_ids_parse():
    assert decode_wp_jwt(sign(claims(data={"user": {"id": "007"}})), **CONFIG) == 7
    assert decode_wp_jwt(sign(claims(data={"user": {"id": str(2**64 - 1)}})), **CONFIG) == 2**64 - 1


# --- configuration mistakes are the server's, not the caller's ------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"secret": ""},
        {"issuer": ""},
        {"issuer": "/"},
        {"algorithm": "none"},
        {"algorithm": "RS256"},
        {"algorithm": "hs256"},
        {"leeway": -1},
    ],
)
def test_bad_configuration_raises_value_error(config):
    with pytest.raises(ValueError):
        decode_wp_jwt(sign(claims()), **{**CONFIG, **config})


# --- bearer header ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header", ["Bearer abc.def.ghi", "bearer abc.def.ghi", "BEARER abc.def.ghi", "  Bearer   abc.def.ghi  ",
               "Bearer\tabc.def.ghi"],
)
def test_bearer_token_parses(header):
    assert bearer_token(header) == "abc.def.ghi"


def test_missing_header():
    with pytest.raises(AuthError) as info:
        bearer_token(None)
    assert (info.value.code, info.value.status) == ("missing_token", 401)


def test_basic_header():
    with pytest.raises(AuthError) as info:
        bearer_token("Basic xxx")
    assert info.value.code == "missing_token"
    assert "xxx" not in info.value.message


@pytest.mark.parametrize("header", ["", "   ", "Bearer", "Bearer ", "Bearer    ", "Token abc", "Bearerabc", "abc"])
def test_other_unusable_headers(header):
    with pytest.raises(AuthError) as info:
        bearer_token(header)
    assert info.value.code == "missing_token"


def test_header_to_user_id_end_to_end():
    token = sign(claims(data={"user": {"id": 99}}))
    assert decode_wp_jwt(bearer_token(f"Bearer {token}"), **CONFIG) == 99


# --- internal API key -----------------------------------------------------------------------------


def test_internal_key_correct():
    assert check_internal_key(INTERNAL_KEY, INTERNAL_KEY) is None


@pytest.mark.parametrize("presented", [INTERNAL_KEY + "x", INTERNAL_KEY[:-1], INTERNAL_KEY.upper(), "bad-key", "ü"])
def test_internal_key_wrong(presented):
    with pytest.raises(AuthError) as info:
        check_internal_key(presented, INTERNAL_KEY)
    assert (info.value.code, info.value.status) == ("invalid_api_key", 401)
    assert INTERNAL_KEY not in info.value.message and presented not in info.value.message


def test_internal_key_empty():
    with pytest.raises(AuthError) as info:
        check_internal_key("", INTERNAL_KEY)
    assert info.value.code == "invalid_api_key"


def test_internal_key_missing():
    with pytest.raises(AuthError) as info:
        check_internal_key(None, INTERNAL_KEY)
    assert info.value.code == "invalid_api_key"


@pytest.mark.parametrize("expected", [None, ""])
@pytest.mark.parametrize("presented", [None, "", "anything"])
def test_internal_key_not_configured(expected, presented):
    with pytest.raises(AuthError) as info:
        check_internal_key(presented, expected)
    assert (info.value.code, info.value.status) == ("internal_key_not_configured", 401)


def test_internal_key_non_ascii_is_compared_as_bytes():
    check_internal_key("clé-ünïcode", "clé-ünïcode")
    with pytest.raises(AuthError):
        check_internal_key("cle-unicode", "clé-ünïcode")


@pytest.mark.parametrize("make", [dict, Headers])
def test_internal_key_via_x_api_key(make):
    headers = make({"X-API-Key": INTERNAL_KEY})
    assert internal_key_from_headers(headers) == INTERNAL_KEY
    check_internal_key(internal_key_from_headers(headers), INTERNAL_KEY)


@pytest.mark.parametrize("make", [dict, Headers])
def test_internal_key_via_bearer(make):
    headers = make({"Authorization": f"Bearer {INTERNAL_KEY}"})
    assert internal_key_from_headers(headers) == INTERNAL_KEY
    check_internal_key(internal_key_from_headers(headers), INTERNAL_KEY)


def test_internal_key_header_names_are_case_insensitive():
    assert internal_key_from_headers({"x-api-key": " k1 "}) == "k1"
    assert internal_key_from_headers({"authorization": "bearer k2"}) == "k2"


def test_x_api_key_wins_over_bearer():
    headers = {"X-API-Key": "from-x-api-key", "Authorization": "Bearer from-bearer"}
    assert internal_key_from_headers(headers) == "from-x-api-key"


def test_empty_x_api_key_falls_back_to_bearer():
    assert internal_key_from_headers({"X-API-Key": "  ", "Authorization": "Bearer k"}) == "k"


@pytest.mark.parametrize(
    "headers", [None, {}, Headers(), {"Authorization": "Basic xxx"}, {"X-API-Key": ""}, {"Authorization": "Bearer "}],
)
def test_no_internal_key_in_headers(headers):
    assert internal_key_from_headers(headers) is None
    with pytest.raises(AuthError) as info:
        check_internal_key(internal_key_from_headers(headers), INTERNAL_KEY)
    assert info.value.code == "invalid_api_key"


# --- errors -------------------------------------------------------------------------------------


def test_auth_error_shape():
    err = AuthError("token_expired", "The login token has expired; sign in again.")
    assert isinstance(err, Exception)
    assert (err.code, err.message, err.status, str(err)) == (
        "token_expired", "The login token has expired; sign in again.", 401,
        "The login token has expired; sign in again.",
    )
    assert AuthError("x", "y.", status=403).status == 403


def test_token_never_appears_in_any_error_message():
    now = int(time.time())
    tokens = [
        sign(claims(exp=now - 600, iat=now - 7200, nbf=now - 7200)),
        sign(claims(nbf=now + 3600, exp=now + 7200)),
        sign(claims(), secret=OTHER_SECRET),
        sign(claims(), algorithm="HS512"),
        f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(claims())}.",
        sign(claims(iss="https://evil.example")),
        sign(claims(exp=...)),
        sign(claims(data=...)),
        sign(claims(data={"user": {"id": "abc"}})),
        "garbage",
    ]
    codes = set()
    for token in tokens:
        err = refused(token)
        codes.add(err.code)
        for piece in token.split("."):
            if len(piece) > 8:
                assert piece not in err.message
        with pytest.raises(AuthError) as info:
            bearer_token(f"Basic {token}")
        assert token not in info.value.message
    assert codes == {
        "token_expired", "token_not_yet_valid", "invalid_token", "invalid_issuer", "missing_user",
    }
