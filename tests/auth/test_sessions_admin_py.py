"""Sessions (auth.sessions rows, the fan's own list, signOut scopes across devices) and the admin
API (pagination headers, create/get/update/delete, bans agreeing with Koepon's suspension,
generateLink) with supabase-py."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest
from auth_helpers import new_email
from supabase_auth.errors import AuthApiError

from koepon.localstack.seed import ADMIN
from koepon.settings import ANON_KEY, SERVICE_ROLE_KEY
from supabase import ClientOptions, create_client

PASSWORD = "correct horse 1"


def client(api: str, agent: str | None = None):
    headers = {"User-Agent": agent} if agent else {}
    return create_client(api, ANON_KEY, ClientOptions(auto_refresh_token=False, persist_session=False,
                                                      headers=headers))


def admin(api: str):
    return create_client(api, SERVICE_ROLE_KEY, ClientOptions(auto_refresh_token=False, persist_session=False))


def make_user(api: str, **extra) -> tuple[str, str]:
    email = new_email()
    user = admin(api).auth.admin.create_user({"email": email, "password": PASSWORD, "email_confirm": True, **extra})
    return email, user.user.id


def test_every_sign_in_is_a_session_the_fan_can_list_and_end(api, seeded_db_url):
    email, uid = make_user(api)
    phone = client(api, "KoeponPhone/1.0 (iPhone)")
    pc = client(api, "KoeponPC/2.0 (Windows)")
    s_phone = phone.auth.sign_in_with_password({"email": email, "password": PASSWORD}).session
    s_pc = pc.auth.sign_in_with_password({"email": email, "password": PASSWORD}).session
    rows = pc.rpc("my_sessions", {}).execute().data
    assert {r["user_agent"] for r in rows} == {"KoeponPhone/1.0 (iPhone)", "KoeponPC/2.0 (Windows)"}
    assert all(r["ip"] == "127.0.0.1" and r["aal"] == "aal1" and r["created_at"] for r in rows)
    current = [r for r in rows if r["is_current"]]
    assert len(current) == 1 and current[0]["user_agent"].startswith("KoeponPC")
    phone_row = next(r for r in rows if r["user_agent"].startswith("KoeponPhone"))
    # The PC ends the phone's session: the phone's refresh token stops working.
    assert pc.rpc("end_my_session", {"p_session_id": phone_row["id"]}).execute().data["ended"] is True
    with pytest.raises(AuthApiError) as exc:
        client(api).auth.refresh_session(s_phone.refresh_token)
    assert exc.value.code == "refresh_token_not_found"
    # Someone else's session (or none) is not found.
    other_email, _ = make_user(api)
    other = client(api)
    other.auth.sign_in_with_password({"email": other_email, "password": PASSWORD})
    r = other.rpc("end_my_session", {"p_session_id": current[0]["id"]})
    with pytest.raises(Exception) as exc:
        r.execute()
    assert "session_not_found" in str(exc.value)
    assert client(api).auth.refresh_session(s_pc.refresh_token).session


def test_sign_out_scopes_across_two_sessions(api):
    email, _ = make_user(api)

    def two():
        a, b = client(api), client(api)
        sa = a.auth.sign_in_with_password({"email": email, "password": PASSWORD}).session
        sb = b.auth.sign_in_with_password({"email": email, "password": PASSWORD}).session
        return a, sa, b, sb

    def alive(session) -> bool:
        r = httpx.post(f"{api}/auth/v1/token?grant_type=refresh_token", headers={"apikey": ANON_KEY},
                       json={"refresh_token": session.refresh_token})
        return r.status_code == 200

    a, sa, b, sb = two()
    a.auth.sign_out({"scope": "others"})
    assert not alive(sb) and alive(sa)
    a, sa, b, sb = two()
    a.auth.sign_out({"scope": "local"})
    assert not alive(sa) and alive(sb)
    a, sa, b, sb = two()
    a.auth.sign_out({"scope": "global"})
    assert not alive(sa) and not alive(sb)


def test_admin_list_users_is_paginated_with_link_and_total(api):
    for _ in range(3):
        make_user(api)
    h = {"apikey": SERVICE_ROLE_KEY, "Authorization": f"Bearer {SERVICE_ROLE_KEY}"}
    r = httpx.get(f"{api}/auth/v1/admin/users", params={"page": 1, "per_page": 2}, headers=h)
    assert r.status_code == 200
    total = int(r.headers["x-total-count"])
    assert total >= 3 and len(r.json()["users"]) == 2 and r.json()["aud"] == "authenticated"
    last = -(-total // 2)
    links = dict(reversed(part.strip().split("; ")) for part in r.headers["link"].split(","))
    assert parse_qs(urlsplit(links['rel="next"'].strip("<>")).query) == {"page": ["2"], "per_page": ["2"]}
    assert parse_qs(urlsplit(links['rel="last"'].strip("<>")).query) == {"page": [str(last)], "per_page": ["2"]}
    listed = admin(api).auth.admin.list_users(page=2, per_page=2)
    assert len(listed) == 2 and {u.id for u in listed}.isdisjoint({u["id"] for u in r.json()["users"]})
    # Only the service role may use it.
    r = httpx.get(f"{api}/auth/v1/admin/users", headers={"apikey": ANON_KEY, "Authorization": f"Bearer {ANON_KEY}"})
    assert (r.status_code, r.json()["error_code"]) == (403, "not_admin")


def test_admin_create_get_update_delete(api, seeded_db_url):
    adm = admin(api).auth.admin
    email, uid = make_user(api, user_metadata={"display_name": "Admin Made"})
    got = adm.get_user_by_id(uid).user
    assert got.email == email and got.email_confirmed_at is not None
    assert got.user_metadata["display_name"] == "Admin Made"
    with pytest.raises(AuthApiError) as exc:
        adm.create_user({"email": email, "password": PASSWORD})
    assert (exc.value.status, exc.value.code) == (422, "email_exists")
    upd = adm.update_user_by_id(uid, {"user_metadata": {"plan": "gold"}, "password": "changed pw 9"}).user
    assert upd.user_metadata == {"display_name": "Admin Made", "plan": "gold"}
    assert client(api).auth.sign_in_with_password({"email": email, "password": "changed pw 9"}).session
    with pytest.raises(AuthApiError) as exc:
        adm.get_user_by_id("00000000-0000-4000-8000-00000000dead")
    assert (exc.value.status, exc.value.code) == (404, "user_not_found")
    # Soft delete keeps the row (the id stays a valid reference), with no address or password.
    adm.delete_user(uid, should_soft_delete=True)
    with psycopg.connect(seeded_db_url) as conn:
        row = conn.execute("select email, encrypted_password, deleted_at from auth.users where id = %s",
                           (uid,)).fetchone()
    assert row[0] != email and "@" not in row[0] and row[1] is None and row[2] is not None
    with pytest.raises(AuthApiError):
        client(api).auth.sign_in_with_password({"email": email, "password": "changed pw 9"})
    # Hard delete of a user nothing references.
    _e2, uid2 = make_user(api)
    adm.delete_user(uid2)
    with psycopg.connect(seeded_db_url) as conn:
        assert conn.execute("select count(*) from auth.users where id = %s", (uid2,)).fetchone()[0] == 0


def _status(db_url: str, uid: str) -> tuple[str, bool]:
    with psycopg.connect(db_url) as conn:
        return conn.execute("select p.status, coalesce(u.banned_until > now(), false) from app.profiles p "
                            "join auth.users u on u.id = p.user_id where p.user_id = %s", (uid,)).fetchone()


def test_auth_ban_and_koepon_suspension_agree_both_ways(api, seeded_db_url):
    adm = admin(api).auth.admin
    email, uid = make_user(api)
    fan = client(api)
    session = fan.auth.sign_in_with_password({"email": email, "password": PASSWORD}).session
    # Auth's ban -> Koepon suspension; the banned user can neither sign in nor refresh.
    banned = adm.update_user_by_id(uid, {"ban_duration": "24h"}).user
    assert banned.banned_until is not None
    assert _status(seeded_db_url, uid) == ("suspended", True)
    with pytest.raises(AuthApiError) as exc:
        client(api).auth.sign_in_with_password({"email": email, "password": PASSWORD})
    assert (exc.value.status, exc.value.code) == (400, "user_banned")
    with pytest.raises(AuthApiError) as exc:
        client(api).auth.refresh_session(session.refresh_token)
    assert exc.value.code == "user_banned"
    adm.update_user_by_id(uid, {"ban_duration": "none"})
    assert _status(seeded_db_url, uid) == ("active", False)
    with pytest.raises(AuthApiError) as exc:
        adm.update_user_by_id(uid, {"ban_duration": "forever"})
    assert (exc.value.status, exc.value.code) == (400, "validation_failed")
    # Koepon's suspension (the admin RPC) -> Auth ban.
    admin_fan = client(api)
    admin_fan.auth.sign_in_with_password({"email": ADMIN[0], "password": ADMIN[1]})
    admin_fan.rpc("admin_suspend_user", {"p_user_id": uid, "p_reason": "chargeback abuse"}).execute()
    assert _status(seeded_db_url, uid) == ("suspended", True)
    with pytest.raises(AuthApiError) as exc:
        client(api).auth.sign_in_with_password({"email": email, "password": PASSWORD})
    assert exc.value.code == "user_banned"
    admin_fan.rpc("admin_unsuspend_user", {"p_user_id": uid, "p_reason": "resolved"}).execute()
    assert _status(seeded_db_url, uid) == ("active", False)
    assert client(api).auth.sign_in_with_password({"email": email, "password": PASSWORD}).session


@pytest.mark.parametrize("kind", ["signup", "magiclink", "recovery", "invite"])
def test_generate_link_returns_a_working_link_without_sending(api, mail, kind):
    adm = admin(api).auth.admin
    email = new_email(kind)
    if kind in ("magiclink", "recovery"):
        adm.create_user({"email": email, "password": PASSWORD, "email_confirm": True})
    params = {"type": kind, "email": email, "options": {"redirect_to": "http://127.0.0.1:3000/landing"}}
    if kind == "signup":
        params["password"] = PASSWORD
    res = adm.generate_link(params)
    props = res.properties
    assert props.verification_type == kind and len(props.email_otp) == 6 and props.hashed_token
    assert props.redirect_to == "http://127.0.0.1:3000/landing"
    loc = urlsplit(httpx.get(props.action_link, follow_redirects=False).headers["location"])
    assert loc.path == "/landing" and parse_qs(loc.fragment)["access_token"]
    assert mail.messages(email) == []  # generateLink never sends


def test_generate_link_email_change(api):
    adm = admin(api).auth.admin
    email, uid = make_user(api)
    new = new_email("changed")
    res = adm.generate_link({"type": "email_change_new", "email": email, "new_email": new})
    assert res.properties.verification_type == "email_change_new"
    r = client(api).auth.verify_otp({"token_hash": res.properties.hashed_token, "type": "email_change"})
    assert r.user.email == new
    with pytest.raises(AuthApiError) as exc:
        adm.generate_link({"type": "recovery", "email": new_email("nobody")})
    assert (exc.value.status, exc.value.code) == (404, "user_not_found")


@pytest.mark.parametrize("field, value, kind", [("redirect_to", 0, "number"), ("redirect_to", ["x"], "array"),
                                                ("email", {"a": 1}, "object")])
def test_generate_link_refuses_a_string_field_of_another_kind_as_gotrue_decodes_it(api, field, value, kind):
    """GoTrue decodes the body into GenerateLinkParams, whose fields are strings: another JSON kind is
    400 bad_json, never a 500 from the value reaching the redirect check."""
    body = {"type": "magiclink", "email": new_email("kind"), field: value}
    r = httpx.post(f"{api}/auth/v1/admin/generate_link", json=body,
                   headers={"apikey": SERVICE_ROLE_KEY, "Authorization": f"Bearer {SERVICE_ROLE_KEY}"})
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "bad_json"
    assert f"cannot unmarshal {kind} into Go struct field GenerateLinkParams.{field} of type string" in r.json()["msg"]


def test_a_timed_ban_that_runs_out_ends_the_suspension(api, seeded_db_url):
    """Auth lets the fan in again once ban_duration has passed; Koepon's suspension ends with it (at the
    refresh or sign-in, before the every-minute job would), so the fan's RPCs work again."""
    adm = admin(api).auth.admin
    email, uid = make_user(api)
    session = client(api).auth.sign_in_with_password({"email": email, "password": PASSWORD}).session
    email2, uid2 = make_user(api)
    banned_until = [adm.update_user_by_id(u, {"ban_duration": "2s"}).user.banned_until for u in (uid, uid2)]
    assert _status(seeded_db_url, uid) == ("suspended", True) and _status(seeded_db_url, uid2) == ("suspended", True)
    with pytest.raises(AuthApiError) as exc:
        client(api).auth.sign_in_with_password({"email": email2, "password": PASSWORD})
    assert exc.value.code == "user_banned"
    with psycopg.connect(seeded_db_url, autocommit=True) as conn:
        # Wait for the ban to run out (the database's clock decides, as Auth's check does).
        ran_out = "select now() > max(b) from unnest(%s::timestamptz[]) b"
        for _ in range(100):
            if conn.execute(ran_out, (banned_until,)).fetchone()[0]:
                break
            conn.execute("select pg_sleep(0.1)")
        assert conn.execute(ran_out, (banned_until,)).fetchone()[0]
    # The ban ran out: refreshing a session from before the ban ends the suspension at once...
    assert client(api).auth.refresh_session(session.refresh_token).session.access_token
    assert _status(seeded_db_url, uid) == ("active", False)
    # ...and so does a new sign-in; the fan's RPCs work again.
    fan2 = client(api)
    fan2.auth.sign_in_with_password({"email": email2, "password": PASSWORD})
    assert _status(seeded_db_url, uid2) == ("active", False)
    profile = fan2.rpc("update_my_profile", {"p_display_name": "back again"}).execute().data
    assert profile["display_name"] == "back again"
    with psycopg.connect(seeded_db_url, autocommit=True) as conn:
        sources = conn.execute("select target_id, details ->> 'source' from app.audit_log "
                               "where action = 'user.unsuspend' and target_id = any(%s) order by id",
                               ([uid, uid2],)).fetchall()
    assert sources == [(uid, "auth_ban_expired"), (uid2, "auth_ban_expired")]
