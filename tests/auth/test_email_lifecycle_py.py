"""The e-mail lifecycle with supabase-py, reading every e-mail from the mail catcher's Mailpit API:
confirmation (GET link and POST code), resend, OTP (fresh, reused, expired), magic link, recovery,
e-mail change confirmed from both addresses, reauthentication, PKCE, invite, redirect allow list,
e-mail send limits and /settings."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest
from auth_helpers import code_of, link_of, new_email
from supabase_auth.errors import AuthApiError

from koepon.localstack.api.testing import APPS
from koepon.settings import ANON_KEY, SERVICE_ROLE_KEY
from supabase import ClientOptions, create_client

PASSWORD = "correct horse 1"


def client(api: str, flow: str = "implicit"):
    return create_client(api, ANON_KEY, ClientOptions(auto_refresh_token=False, persist_session=False,
                                                      flow_type=flow))


def admin(api: str):
    return create_client(api, SERVICE_ROLE_KEY, ClientOptions(auto_refresh_token=False, persist_session=False))


def api_error(fn, *args) -> AuthApiError:
    with pytest.raises(AuthApiError) as exc:
        fn(*args)
    return exc.value


def test_confirmation_link_confirms_and_signs_in(api, mail, seeded_db_url):
    email = new_email()
    sb = client(api)
    res = sb.auth.sign_up({"email": email, "password": PASSWORD,
                           "options": {"email_redirect_to": "http://127.0.0.1:3000/welcome",
                                       "data": {"display_name": "みらい"}}})
    assert res.session is None and res.user.email == email and res.user.email_confirmed_at is None
    err = api_error(sb.auth.sign_in_with_password, {"email": email, "password": PASSWORD})
    assert (err.status, err.code, err.message) == (400, "email_not_confirmed", "Email not confirmed")
    [msg] = mail.wait(email)
    assert msg["Subject"] == "【こえポン！】メールアドレスの確認 / Confirm your email address"
    assert "メールアドレスの確認" in msg["HTML"] and "Confirm your email address" in msg["HTML"]
    link = link_of(msg)
    assert "type=signup" in link and "redirect_to=http://127.0.0.1:3000/welcome" in link
    r = httpx.get(link, follow_redirects=False)
    assert r.status_code == 303
    target = urlsplit(r.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == "http://127.0.0.1:3000/welcome"
    frag = parse_qs(target.fragment)
    assert frag["type"] == ["signup"] and frag["token_type"] == ["bearer"] and frag["refresh_token"]
    assert sb.auth.get_user(frag["access_token"][0]).user.email_confirmed_at is not None
    assert sb.auth.sign_in_with_password({"email": email, "password": PASSWORD}).session
    # The link is spent: opening it again redirects with GoTrue's error in the fragment.
    again = urlsplit(httpx.get(link, follow_redirects=False).headers["location"])
    assert parse_qs(again.fragment)["error_code"] == ["otp_expired"]
    assert parse_qs(again.fragment)["error"] == ["access_denied"]
    with psycopg.connect(seeded_db_url) as conn:
        name = conn.execute("select p.display_name from app.profiles p join auth.users u on u.id = p.user_id "
                            "where u.email = %s", (email,)).fetchone()[0]
    assert name == "みらい"


def test_resend_then_confirm_with_the_six_digit_code(api, mail):
    email = new_email()
    sb = client(api)
    sb.auth.sign_up({"email": email, "password": PASSWORD})
    sb.auth.resend({"type": "signup", "email": email})
    newest, first = mail.wait(email, 2)
    assert code_of(newest) != code_of(first) or link_of(newest) != link_of(first)
    # The first code was replaced by the resend.
    err = api_error(sb.auth.verify_otp, {"email": email, "token": code_of(first), "type": "signup"})
    assert (err.status, err.code) == (403, "otp_expired")
    res = sb.auth.verify_otp({"email": email, "token": code_of(newest), "type": "signup"})
    assert res.session and res.user.email_confirmed_at is not None
    # A resend for a confirmed or unknown address answers the same and sends nothing.
    sb.auth.resend({"type": "signup", "email": email})
    sb.auth.resend({"type": "signup", "email": new_email("nobody")})
    assert len(mail.messages(email)) == 2


def test_email_otp_fresh_reused_and_expired(api, mail, seeded_db_url):
    email = new_email()
    sb = client(api)
    sb.auth.sign_in_with_otp({"email": email})  # creates the user (should_create_user defaults to true)
    [msg] = mail.wait(email)
    code = code_of(msg)
    res = sb.auth.verify_otp({"email": email, "token": code, "type": "email"})
    assert res.session.user.email == email
    err = api_error(sb.auth.verify_otp, {"email": email, "token": code, "type": "email"})
    assert (err.status, err.code, err.message) == (403, "otp_expired", "Token has expired or is invalid")
    # Known address now: a magic link e-mail; its code expires after otp_expiry.
    sb.auth.sign_in_with_otp({"email": email})
    code = code_of(mail.wait(email, 2)[0])
    with psycopg.connect(seeded_db_url) as conn:
        conn.execute("update auth.users set recovery_sent_at = now() - interval '2 hours' where email = %s", (email,))
    err = api_error(sb.auth.verify_otp, {"email": email, "token": code, "type": "email"})
    assert (err.status, err.code) == (403, "otp_expired")
    # should_create_user false for an unknown address: GoTrue's otp_disabled.
    err = api_error(sb.auth.sign_in_with_otp, {"email": new_email("x"), "options": {"should_create_user": False}})
    assert (err.status, err.code) == (422, "otp_disabled")


def test_magic_link_signs_in_through_the_link(api, mail):
    email = new_email()
    adm = admin(api)
    adm.auth.admin.create_user({"email": email, "password": PASSWORD, "email_confirm": True})
    sb = client(api)
    sb.auth.sign_in_with_otp({"email": email, "options": {"email_redirect_to": "http://127.0.0.1:3000/in"}})
    [msg] = mail.wait(email)
    assert msg["Subject"].endswith("Your sign-in link") and "type=magiclink" in link_of(msg)
    loc = urlsplit(httpx.get(link_of(msg), follow_redirects=False).headers["location"])
    frag = parse_qs(loc.fragment)
    assert loc.path == "/in" and frag["type"] == ["magiclink"]
    assert sb.auth.get_user(frag["access_token"][0]).user.email == email


def test_password_recovery_then_new_password(api, mail):
    email = new_email()
    admin(api).auth.admin.create_user({"email": email, "password": PASSWORD, "email_confirm": True})
    sb = client(api)
    sb.auth.reset_password_for_email(email, {"redirect_to": "http://127.0.0.1:3000/reset"})
    sb.auth.reset_password_for_email(new_email("unknown"))  # same answer for an unknown address
    [msg] = mail.wait(email)
    assert msg["Subject"].endswith("Reset your password")
    token_hash = parse_qs(urlsplit(link_of(msg)).query)["token"][0]
    res = sb.auth.verify_otp({"token_hash": token_hash, "type": "recovery"})
    assert res.session
    err = api_error(sb.auth.update_user, {"password": PASSWORD})
    assert (err.status, err.code) == (422, "same_password")
    sb.auth.update_user({"password": "a new secret 2"})
    assert client(api).auth.sign_in_with_password({"email": email, "password": "a new secret 2"}).session
    err = api_error(client(api).auth.sign_in_with_password, {"email": email, "password": PASSWORD})
    assert err.code == "invalid_credentials"


def test_email_change_needs_both_addresses(api, mail):
    old, new = new_email("old"), new_email("new")
    admin(api).auth.admin.create_user({"email": old, "password": PASSWORD, "email_confirm": True})
    sb = client(api)
    sb.auth.sign_in_with_password({"email": old, "password": PASSWORD})
    res = sb.auth.update_user({"email": new})
    assert res.user.email == old and res.user.new_email == new
    [to_old] = mail.wait(old)
    [to_new] = mail.wait(new)
    assert to_old["Subject"].endswith("Confirm your new email address") and new in to_old["Text"]
    first = httpx.get(link_of(to_old), follow_redirects=False)
    assert parse_qs(urlsplit(first.headers["location"]).fragment)["message"] == [
        "Confirmation link accepted. Please proceed to confirm link sent to the other email"]
    assert sb.auth.get_user().user.email == old  # one confirmation is not enough
    res = sb.auth.verify_otp({"email": new, "token": code_of(to_new), "type": "email_change"})
    assert res.user.email == new
    assert client(api).auth.sign_in_with_password({"email": new, "password": PASSWORD}).session
    err = api_error(client(api).auth.sign_in_with_password, {"email": old, "password": PASSWORD})
    assert err.code == "invalid_credentials"


def test_email_change_to_a_taken_address_is_refused(api):
    a, b = new_email("a"), new_email("b")
    adm = admin(api)
    for e in (a, b):
        adm.auth.admin.create_user({"email": e, "password": PASSWORD, "email_confirm": True})
    sb = client(api)
    sb.auth.sign_in_with_password({"email": a, "password": PASSWORD})
    err = api_error(sb.auth.update_user, {"email": b})
    assert (err.status, err.code) == (422, "email_exists")


def test_pkce_magic_link_exchange(api, mail):
    email = new_email()
    admin(api).auth.admin.create_user({"email": email, "password": PASSWORD, "email_confirm": True})
    sb = client(api, "pkce")
    sb.auth.sign_in_with_otp({"email": email, "options": {"email_redirect_to": "http://127.0.0.1:3000/cb"}})
    [msg] = mail.wait(email)
    assert "token=pkce_" in link_of(msg)
    loc = urlsplit(httpx.get(link_of(msg), follow_redirects=False).headers["location"])
    code = parse_qs(loc.query)["code"][0]
    assert loc.path == "/cb" and not loc.fragment
    res = sb.auth.exchange_code_for_session({"auth_code": code})
    assert res.session.user.email == email
    # The code is spent, and a wrong verifier never works.
    r = httpx.post(f"{api}/auth/v1/token?grant_type=pkce", headers={"apikey": ANON_KEY},
                   json={"auth_code": code, "code_verifier": "x" * 43})
    assert (r.status_code, r.json()["error_code"]) == (404, "flow_state_not_found")


def test_pkce_wrong_verifier_is_bad_code_verifier(api, mail):
    email = new_email()
    admin(api).auth.admin.create_user({"email": email, "password": PASSWORD, "email_confirm": True})
    challenge = "A" * 43
    r = httpx.post(f"{api}/auth/v1/otp", headers={"apikey": ANON_KEY},
                   json={"email": email, "code_challenge": challenge, "code_challenge_method": "plain"})
    assert r.status_code == 200, r.text
    loc = urlsplit(httpx.get(link_of(mail.wait(email)[0]), follow_redirects=False).headers["location"])
    code = parse_qs(loc.query)["code"][0]
    r = httpx.post(f"{api}/auth/v1/token?grant_type=pkce", headers={"apikey": ANON_KEY},
                   json={"auth_code": code, "code_verifier": "B" * 43})
    assert (r.status_code, r.json()["error_code"]) == (400, "bad_code_verifier")
    r = httpx.post(f"{api}/auth/v1/token?grant_type=pkce", headers={"apikey": ANON_KEY},
                   json={"auth_code": code, "code_verifier": challenge})
    assert r.status_code == 200 and r.json()["user"]["email"] == email


def test_redirect_outside_the_allow_list_is_not_used(api, mail):
    email = new_email()
    admin(api).auth.admin.create_user({"email": email, "password": PASSWORD, "email_confirm": True})
    sb = client(api)
    sb.auth.reset_password_for_email(email, {"redirect_to": "https://evil.example/steal"})
    [msg] = mail.wait(email)
    assert "evil.example" not in msg["HTML"] and "redirect_to=http://127.0.0.1:3000" in link_of(msg)
    # Even when a crafted link asks for it, the redirect goes to the site URL.
    link = link_of(msg).split("&redirect_to=")[0] + "&redirect_to=https://evil.example/steal"
    loc = httpx.get(link, follow_redirects=False).headers["location"]
    assert loc.startswith("http://127.0.0.1:3000#") and "evil" not in loc
    # An allowed pattern (additional_redirect_urls) is honoured.
    sb.auth.sign_in_with_otp({"email": email, "options": {"email_redirect_to": "koepon://callback"}})
    assert "redirect_to=koepon://callback" in link_of(mail.wait(email, 2)[0])


def test_reauthentication_for_a_password_change(api, mail, seeded_db_url):
    email = new_email()
    admin(api).auth.admin.create_user({"email": email, "password": PASSWORD, "email_confirm": True})
    sb = client(api)
    session = sb.auth.sign_in_with_password({"email": email, "password": PASSWORD}).session
    config = _config(api)
    config.secure_password_change = True
    try:
        # GoTrue asks for the code only when the session is older than 24 hours.
        with psycopg.connect(seeded_db_url) as conn:
            conn.execute("update auth.sessions set created_at = now() - interval '25 hours' where user_id = %s",
                         (session.user.id,))
        err = api_error(sb.auth.update_user, {"password": "another one 3"})
        assert (err.status, err.code) == (400, "reauthentication_needed")
        sb.auth.reauthenticate()
        [msg] = mail.wait(email)
        assert msg["Subject"].startswith("【こえポン！】確認コード ")
        err = api_error(sb.auth.update_user, {"password": "another one 3", "nonce": "000000"})
        assert (err.status, err.code) == (422, "reauthentication_not_valid")
        sb.auth.update_user({"password": "another one 3", "nonce": code_of(msg)})
    finally:
        config.secure_password_change = False
    assert client(api).auth.sign_in_with_password({"email": email, "password": "another one 3"}).session


def test_invite_by_email(api, mail):
    email = new_email("invited")
    user = admin(api).auth.admin.invite_user_by_email(email).user
    assert user.invited_at is not None
    [msg] = mail.wait(email)
    assert msg["Subject"].endswith("You have been invited")
    token_hash = parse_qs(urlsplit(link_of(msg)).query)["token"][0]
    res = client(api).auth.verify_otp({"token_hash": token_hash, "type": "invite"})
    assert res.session.user.id == user.id and res.user.email_confirmed_at is not None


def test_email_send_limits_per_address_and_per_ip(api, mail, seeded_db_url):
    email = new_email()
    admin(api).auth.admin.create_user({"email": email, "password": PASSWORD, "email_confirm": True})
    config = _config(api)
    sb = client(api)
    config.max_frequency = 60.0
    try:
        sb.auth.reset_password_for_email(email)
        err = api_error(sb.auth.reset_password_for_email, email)
        assert (err.status, err.code) == (429, "over_email_send_rate_limit")
        assert err.message.startswith("For security purposes, you can only request this after ")
    finally:
        config.max_frequency = 0.0
    with psycopg.connect(seeded_db_url) as conn:
        sent = conn.execute("select count(*) from auth.koepon_email_sends "
                            "where at > now() - interval '1 hour'").fetchone()[0]
    config.email_sent_per_hour = sent + 1
    try:
        sb.auth.reset_password_for_email(email)
        err = api_error(sb.auth.reset_password_for_email, email)
        assert (err.status, err.code, err.message) == (429, "over_email_send_rate_limit", "email rate limit exceeded")
    finally:
        config.email_sent_per_hour = 10_000
    assert len(mail.messages(email)) == 2


def test_settings_says_what_is_on(api):
    r = httpx.get(f"{api}/auth/v1/settings", headers={"apikey": ANON_KEY}).json()
    assert r["external"]["email"] is True and r["external"]["google"] is False
    assert r["mailer_autoconfirm"] is False and r["disable_signup"] is False


def test_verify_input_errors(api):
    h = {"apikey": ANON_KEY}
    r = httpx.post(f"{api}/auth/v1/verify", headers=h, json={"type": "signup"})
    assert (r.status_code, r.json()["error_code"]) == (400, "validation_failed")
    r = httpx.post(f"{api}/auth/v1/verify", headers=h, json={"type": "signup", "token_hash": "nope"})
    assert (r.status_code, r.json()["error_code"], r.json()["msg"]) == (
        403, "otp_expired", "Email link is invalid or has expired")
    r = httpx.post(f"{api}/auth/v1/verify", headers=h, json={"type": "bogus", "token_hash": "x"})
    assert r.status_code == 400 and r.json()["error_code"] == "validation_failed"
    r = httpx.get(f"{api}/auth/v1/verify", params={"type": "signup"}, headers=h)
    assert (r.status_code, r.json()["error_code"]) == (400, "validation_failed")
    r = httpx.post(f"{api}/auth/v1/otp", headers=h, json={"email": "a@b.c", "code_challenge": "short",
                                                           "code_challenge_method": "s256"})
    assert (r.status_code, r.json()["error_code"]) == (400, "validation_failed")


def _config(api: str):
    """The running API's Auth settings (the test server runs in this process)."""
    return APPS[api].state.api.auth.config
