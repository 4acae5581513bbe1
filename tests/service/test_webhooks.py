"""Standard Webhooks signing and verification, the retry schedule, and guarded delivery to a
loopback receiver."""

import base64
import socket
import time

import pytest

from fingerprinting.capture import GuardedClient, HostLimiter, NetworkPolicy
from service.webhooks import (
    MAX_ATTEMPTS,
    USER_AGENT,
    DeliveryResult,
    WebhookVerificationError,
    backoff_seconds,
    deliver,
    new_message_id,
    new_secret,
    secret_bytes,
    sign,
    signed_headers,
    verify,
)
from tests.fingerprinting.capture.servers import LoopbackServer, Request, Responder, static

# The test vector of the reference Python library (standard-webhooks/standard-webhooks,
# libraries/python/tests/test_webhooks.py, test_sign_function): matching it proves that a
# receiver using any of the spec's libraries accepts what we send.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

LOOPBACK = NetworkPolicy.from_setting("127.0.0.0/8")
BODY = b'{"type":"match.found","data":{"scan":"scn_1","channel":"tf1"}}'


def vector_headers():
    return {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }


# -- signing and verifying ------------------------------------------------------------------


def test_the_reference_test_vector_signs_and_verifies():
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE
    # the bare base64 (without whsec_) is the same key
    assert sign(VECTOR_SECRET[6:], VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE
    verify(VECTOR_SECRET, vector_headers(), VECTOR_BODY, now=VECTOR_TIMESTAMP + 10)


def test_new_secrets_are_whsec_base64_of_24_random_bytes():
    a, b = new_secret(), new_secret()
    assert a.startswith("whsec_") and a != b
    assert len(base64.b64decode(a[6:], validate=True)) == 24
    assert secret_bytes(a) == secret_bytes(a[6:]) == base64.b64decode(a[6:])


def test_secret_bytes_tolerates_missing_padding():
    key = bytes(range(25))  # 25 bytes: base64 with "==" padding
    text = base64.b64encode(key).decode()
    assert text.endswith("==")
    assert secret_bytes("whsec_" + text.rstrip("=")) == key


@pytest.mark.parametrize(
    ("secret", "words"),
    [
        ("", "empty"),
        ("whsec_", "empty"),
        ("whsec_not*base64!", "not standard base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "5 bytes"),
        ("whsec_" + base64.b64encode(bytes(65)).decode(), "65 bytes"),
    ],
)
def test_bad_secrets_are_refused_with_a_clear_message(secret, words):
    with pytest.raises(ValueError, match=words):
        secret_bytes(secret)


def test_sign_refuses_message_ids_that_would_make_the_signed_content_ambiguous():
    for bad in ("", "msg.1", "msg 1", "msg\n1"):
        with pytest.raises(ValueError, match="message id"):
            sign(VECTOR_SECRET, bad, VECTOR_TIMESTAMP, VECTOR_BODY)


def test_new_message_ids_are_unique_and_dot_free():
    ids = {new_message_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(i.startswith("msg_") and "." not in i and " " not in i for i in ids)


def test_signed_headers_round_trip_through_verify():
    secret, msg_id = new_secret(), new_message_id()
    headers = signed_headers(secret, msg_id, BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type"}
    assert headers["webhook-id"] == msg_id
    assert headers["content-type"] == "application/json"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    assert headers["webhook-signature"].startswith("v1,")
    verify(secret, headers, BODY)


def test_verify_looks_headers_up_case_insensitively():
    headers = {k.title(): v for k, v in vector_headers().items()}  # Webhook-Id ...
    verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)


def test_a_body_altered_by_one_byte_is_rejected():
    altered = VECTOR_BODY.replace(b"4}", b"5}")
    assert len(altered) == len(VECTOR_BODY) and altered != VECTOR_BODY
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify(VECTOR_SECRET, vector_headers(), altered, now=VECTOR_TIMESTAMP)


def test_a_wrong_secret_is_rejected():
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify(new_secret(), vector_headers(), VECTOR_BODY, now=VECTOR_TIMESTAMP)


def test_the_id_and_timestamp_are_signed_too():
    headers = vector_headers() | {"webhook-id": "msg_other"}
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)
    headers = vector_headers() | {"webhook-timestamp": str(VECTOR_TIMESTAMP + 1)}
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)


def test_timestamps_outside_the_tolerance_are_rejected_either_way():
    # exactly at the tolerance is still accepted, as in the reference library
    verify(VECTOR_SECRET, vector_headers(), VECTOR_BODY, now=VECTOR_TIMESTAMP + 300)
    verify(VECTOR_SECRET, vector_headers(), VECTOR_BODY, now=VECTOR_TIMESTAMP - 300)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(VECTOR_SECRET, vector_headers(), VECTOR_BODY, now=VECTOR_TIMESTAMP + 301)
    with pytest.raises(WebhookVerificationError, match="too new"):
        verify(VECTOR_SECRET, vector_headers(), VECTOR_BODY, now=VECTOR_TIMESTAMP - 301)
    # and the tolerance is a parameter
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(
            VECTOR_SECRET,
            vector_headers(),
            VECTOR_BODY,
            now=VECTOR_TIMESTAMP + 31,
            tolerance_seconds=30,
        )


def test_a_stale_timestamp_fails_against_the_real_clock():
    secret = new_secret()
    headers = signed_headers(secret, new_message_id(), BODY, timestamp=int(time.time()) - 301)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(secret, headers, BODY)
    headers = signed_headers(secret, new_message_id(), BODY, timestamp=int(time.time()) + 400)
    with pytest.raises(WebhookVerificationError, match="too new"):
        verify(secret, headers, BODY)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_named(missing):
    headers = {k: v for k, v in vector_headers().items() if k != missing}
    with pytest.raises(WebhookVerificationError, match=f"missing header {missing}"):
        verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)
    with pytest.raises(WebhookVerificationError, match=f"missing header {missing}"):
        verify(VECTOR_SECRET, headers | {missing: ""}, VECTOR_BODY, now=VECTOR_TIMESTAMP)


@pytest.mark.parametrize("stamp", ["hello", "1614265330.5", "-1614265330", "1_614_265_330"])
def test_a_timestamp_that_is_not_integer_seconds_is_rejected(stamp):
    headers = vector_headers() | {"webhook-timestamp": stamp}
    with pytest.raises(WebhookVerificationError, match="not an integer"):
        verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)


def test_any_of_several_space_separated_signatures_may_match():
    # what a sender rotating its secret sends, plus versions a v1 receiver must skip
    other = sign(new_secret(), VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
    header = " ".join(
        [
            "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
            "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
            "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8E",
            "v1,not base64!",
            "garbage",
            other,
            VECTOR_SIGNATURE,
        ]
    )
    headers = vector_headers() | {"webhook-signature": header}
    verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)
    headers = vector_headers() | {"webhook-signature": header.replace(VECTOR_SIGNATURE, "")}
    with pytest.raises(WebhookVerificationError, match="3 v1 signature"):
        verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)


def test_a_v1_signature_of_the_right_bytes_under_another_version_is_not_accepted():
    headers = vector_headers() | {"webhook-signature": "v2," + VECTOR_SIGNATURE[3:]}
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)


def test_verification_errors_are_value_errors():
    assert issubclass(WebhookVerificationError, ValueError)


# -- retry schedule -------------------------------------------------------------------------


def test_backoff_follows_the_svix_schedule_scaled_to_its_base():
    retries = range(1, MAX_ATTEMPTS)  # MAX_ATTEMPTS counts the first delivery too
    assert MAX_ATTEMPTS == 8
    assert [backoff_seconds(n) for n in retries] == [5, 300, 1800, 7200, 18000, 36000, 36000]
    fast = [backoff_seconds(n, base_seconds=0.05) for n in retries]
    assert fast[0] == pytest.approx(0.05)
    assert fast == pytest.approx([d / 100 for d in (5, 300, 1800, 7200, 18000, 36000, 36000)])
    assert all(isinstance(d, float) for d in fast)
    assert all(a <= b for a, b in zip(fast, fast[1:], strict=False))
    assert all(a < b for a, b in zip(fast[:6], fast[1:6], strict=False))


def test_backoff_is_capped_past_the_schedule_and_refuses_attempt_zero():
    last = backoff_seconds(MAX_ATTEMPTS - 1)
    assert backoff_seconds(MAX_ATTEMPTS) == backoff_seconds(100) == last
    for bad in (0, -1):
        with pytest.raises(ValueError, match="start at 1"):
            backoff_seconds(bad)


# -- delivery -------------------------------------------------------------------------------


@pytest.fixture
def server():
    with LoopbackServer() as s:
        yield s


@pytest.fixture
def client():
    with GuardedClient(LOOPBACK, limiter=HostLimiter(rate=1000, burst=1000)) as c:
        yield c


def test_a_delivery_posts_the_exact_signed_bytes(server, client):
    secret, msg_id = new_secret(), new_message_id()
    headers = signed_headers(secret, msg_id, BODY)
    server.route("/hook", static(b'{"received": true}', "application/json"))
    got = deliver(client, server.url("/hook?token=abc"), BODY, headers, deadline_seconds=5)
    assert got == DeliveryResult(
        ok=True,
        status_code=200,
        error=None,
        elapsed_seconds=got.elapsed_seconds,
        response_excerpt='{"received": true}',
        retryable=False,
    )
    assert 0 < got.elapsed_seconds < 5
    (seen,) = server.requests
    assert seen.method == "POST" and seen.path == "/hook" and seen.query == {"token": "abc"}
    assert seen.body == BODY
    for name, value in headers.items():
        assert seen.headers[name] == value
    assert seen.headers["user-agent"] == USER_AGENT
    assert seen.headers["content-length"] == str(len(BODY))
    # what the receiver saw verifies, with its own (title-cased, extra) headers
    verify(secret, seen.headers, seen.body)


def test_a_204_is_a_success_too(server, client):
    server.route("/hook", static(b"", status=204))
    got = deliver(client, server.url("/hook"), BODY, signed_headers(new_secret(), "msg_1", BODY))
    assert got.ok and got.status_code == 204 and got.error is None


@pytest.mark.parametrize(
    ("code", "retryable"),
    [(500, True), (503, True), (408, True), (429, True), (400, False), (404, False)],
)
def test_error_statuses_fail_and_say_whether_to_retry(server, client, code, retryable):
    server.route("/hook", static(b"boom\n" * 300, "text/plain", status=code))
    got = deliver(client, server.url("/hook"), BODY, signed_headers(new_secret(), "msg_1", BODY))
    assert not got.ok and got.status_code == code
    assert got.error == f"http {code}" and got.retryable is retryable
    assert got.response_excerpt == ("boom\n" * 300)[:500]


def test_410_gone_is_a_permanent_failure(server, client):
    server.route("/hook", static(b"unsubscribed", "text/plain", status=410))
    got = deliver(client, server.url("/hook"), BODY, signed_headers(new_secret(), "msg_1", BODY))
    assert not got.ok and got.status_code == 410 and not got.retryable
    assert got.error.startswith("http 410") and "gone" in got.error
    assert got.response_excerpt == "unsubscribed"


def test_a_redirect_is_not_followed(server, client):
    server.route("/hook", static(b"", status=307, headers={"Location": "/elsewhere?sig=s3cr3t"}))
    server.route("/elsewhere", static(b"ok"))
    got = deliver(client, server.url("/hook"), BODY, signed_headers(new_secret(), "msg_1", BODY))
    assert not got.ok and got.status_code == 307 and not got.retryable
    assert got.error.startswith("redirect not followed: http 307 to /elsewhere")
    assert "s3cr3t" not in got.error  # the Location is redacted like any URL we log
    assert server.paths() == ["/hook"]


def test_a_receiver_that_never_answers_fails_within_the_deadline(server, client):
    def silent(request: Request, r: Responder) -> None:
        r.stopping.wait(30)  # read the request, answer nothing (until the server closes)

    server.route("/hook", silent)
    started = time.monotonic()
    got = deliver(
        client,
        server.url("/hook"),
        BODY,
        signed_headers(new_secret(), "msg_1", BODY),
        deadline_seconds=1.0,
    )
    took = time.monotonic() - started
    assert took < 3 and got.elapsed_seconds < 3
    assert not got.ok and got.status_code is None and got.retryable
    assert got.error.startswith("timeout: ") and "\n" not in got.error
    assert server.paths() == ["/hook"]


def test_the_default_policy_refuses_loopback_before_connecting(server):
    with GuardedClient(NetworkPolicy(), limiter=HostLimiter(rate=1000, burst=1000)) as strict:
        got = deliver(
            strict, server.url("/hook"), BODY, signed_headers(new_secret(), "msg_1", BODY)
        )
    assert not got.ok and got.status_code is None and not got.retryable
    assert got.error.startswith("refused_address: ") and "127.0.0.1" in got.error
    assert server.requests == []


def test_an_unreachable_receiver_is_retryable(client):
    with socket.socket() as s:  # a port nobody listens on (bound, then released)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    got = deliver(
        client, f"http://127.0.0.1:{port}/hook", BODY, signed_headers(new_secret(), "m", BODY)
    )
    assert not got.ok and got.status_code is None and got.retryable
    assert got.error.startswith("unreachable: ")


def test_schemes_other_than_http_are_refused(client):
    got = deliver(client, "file:///etc/passwd", BODY, signed_headers(new_secret(), "m", BODY))
    assert not got.ok and not got.retryable and got.error.startswith("unsupported_scheme: ")


def test_the_response_read_is_capped(server, client):
    server.route("/hook", static("é".encode() * 400_000, "text/plain"))  # 800 kB
    got = deliver(
        client,
        server.url("/hook"),
        BODY,
        signed_headers(new_secret(), "msg_1", BODY),
        max_response_bytes=9,
    )
    assert got.ok and got.status_code == 200
    # 9 bytes: four whole characters, then half of one, replaced
    assert got.response_excerpt == "éééé\ufffd"
