"""The real `supabase` client against the local API: auth, rpc, reads, errors, storage."""

from __future__ import annotations

import time
import uuid

import httpx
import psycopg
import pytest
from postgrest.exceptions import APIError

from koepon.localstack.api.auth import REUSE_INTERVAL
from koepon.settings import ANON_KEY, SERVICE_ROLE_KEY
from supabase import create_client

FAN = ("fan@koepon.local", "koepon-fan-pass")


@pytest.fixture()
def anon(api_url):
    return create_client(api_url, ANON_KEY)


@pytest.fixture()
def fan(api_url):
    sb = create_client(api_url, ANON_KEY)
    sb.auth.sign_in_with_password({"email": FAN[0], "password": FAN[1]})
    return sb


def test_sign_up_then_sign_in_and_read_user(api_url):
    sb = create_client(api_url, ANON_KEY)
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    res = sb.auth.sign_up({"email": email, "password": "long-enough-pw",
                           "options": {"data": {"display_name": "Newcomer"}}})
    assert res.user.email == email
    assert res.session is not None and res.session.access_token
    sb2 = create_client(api_url, ANON_KEY)
    s = sb2.auth.sign_in_with_password({"email": email, "password": "long-enough-pw"})
    assert s.user.id == res.user.id
    assert sb2.auth.get_user().user.user_metadata["display_name"] == "Newcomer"


def test_short_password_and_wrong_password_are_refused(api_url):
    sb = create_client(api_url, ANON_KEY)
    with pytest.raises(Exception, match="(?i)password"):
        sb.auth.sign_up({"email": f"x-{uuid.uuid4().hex[:6]}@example.com", "password": "short"})
    with pytest.raises(Exception, match="(?i)invalid login credentials"):
        sb.auth.sign_in_with_password({"email": FAN[0], "password": "wrong-password"})


def test_refresh_rotates_and_reuse_outside_interval_revokes_session(api_url, seeded_db_url):
    r = httpx.post(f"{api_url}/auth/v1/token?grant_type=password", json={"email": FAN[0], "password": FAN[1]})
    first = r.json()["refresh_token"]
    r2 = httpx.post(f"{api_url}/auth/v1/token?grant_type=refresh_token", json={"refresh_token": first})
    assert r2.status_code == 200
    second = r2.json()["refresh_token"]
    assert second != first
    # Within the reuse interval the spent token yields the same child (a racing tab is not an attack).
    r3 = httpx.post(f"{api_url}/auth/v1/token?grant_type=refresh_token", json={"refresh_token": first})
    assert r3.status_code == 200 and r3.json()["refresh_token"] == second
    # Age the spent token beyond the interval: reuse now revokes the whole session.
    with psycopg.connect(seeded_db_url, autocommit=True) as conn:
        conn.execute("update auth.refresh_tokens set updated_at = now() - make_interval(secs => %s) "
                     "where token = %s", (REUSE_INTERVAL + 5, first))
    r4 = httpx.post(f"{api_url}/auth/v1/token?grant_type=refresh_token", json={"refresh_token": first})
    assert r4.status_code == 400 and r4.json()["error_code"] == "refresh_token_already_used"
    r5 = httpx.post(f"{api_url}/auth/v1/token?grant_type=refresh_token", json={"refresh_token": second})
    assert r5.status_code == 400, "the child token of a revoked session must be dead too"


def test_rpc_and_table_reads_with_count_order_limit_single(anon, fan):
    res = anon.table("gachas").select("id,title", count="exact").order("title").limit(1).execute()
    assert res.count is not None and res.count >= 1
    assert len(res.data) == 1 and set(res.data[0]) == {"id", "title"}
    one = anon.table("gachas").select("id").eq("id", res.data[0]["id"]).single().execute()
    assert one.data["id"] == res.data[0]["id"]
    assert fan.rpc("get_medal_balances").execute().data == []


def test_failing_rpc_carries_code_message_details_hint(fan):
    with pytest.raises(APIError) as exc:
        fan.rpc("create_order", {"p_gacha_id": str(uuid.uuid4()), "p_pull_count": 1,
                                 "p_idempotency_key": "contract-1"}).execute()
    err = exc.value
    assert err.code == "PT404" and err.message == "gacha_not_found"
    assert err.details and err.hint is None


def test_anon_cannot_call_fan_rpc(anon):
    with pytest.raises(APIError) as exc:
        anon.rpc("get_medal_balances").execute()
    assert exc.value.code in ("42501", "PT401")


def test_storage_signed_url_as_service_role_then_download(api_url):
    svc = create_client(api_url, SERVICE_ROLE_KEY)
    name = f"tests/{uuid.uuid4().hex}.mp3"
    svc.storage.from_("rewards").upload(name, b"hello reward", {"content-type": "audio/mpeg"})
    url = svc.storage.from_("rewards").create_signed_url(name, 60)["signedURL"]
    r = httpx.get(url)
    assert r.status_code == 200 and r.content == b"hello reward"
    # A fan has no policy for that object: the signing request is refused.
    fan = create_client(api_url, ANON_KEY)
    fan.auth.sign_in_with_password({"email": FAN[0], "password": FAN[1]})
    with pytest.raises(Exception, match="(?i)not.found"):
        fan.storage.from_("rewards").create_signed_url(name, 60)


def test_signed_url_expires(api_url):
    from koepon.localstack.api.tokens import sign
    from koepon.settings import JWT_SECRET

    token = sign({"url": "rewards/x.txt", "exp": int(time.time()) - 5}, JWT_SECRET)
    r = httpx.get(f"{api_url}/storage/v1/object/sign/rewards/x.txt?token={token}")
    assert r.status_code == 400 and "exp" in r.json()["message"]
