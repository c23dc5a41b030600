"""The private cluster's roles are hosted's: supabase_admin is the bootstrap superuser and
`postgres` an ordinary role; a cluster made by older koepon (bootstrap superuser `postgres`,
which no ALTER ROLE can demote) is re-created by the next start."""

from __future__ import annotations

import psycopg
import pytest

from koepon.db.cluster import LAYOUT_MARKER, Cluster, bindir
from koepon.settings import Paths

from .conftest import free_port


@pytest.fixture()
def own_cluster(tmp_root):
    cluster = Cluster(Paths(tmp_root), port=free_port())
    yield cluster
    cluster.destroy()


def _roles(port: int) -> dict[str, bool]:
    with psycopg.connect(f"postgresql://supabase_admin@127.0.0.1:{port}/postgres") as conn:
        return dict(conn.execute("select rolname, rolsuper from pg_roles "
                                 "where rolname in ('postgres', 'supabase_admin')").fetchall())


def test_a_new_cluster_has_supabase_admin_as_superuser_and_postgres_as_ordinary_role(own_cluster):
    assert own_cluster.start() is True
    assert _roles(own_cluster.port) == {"supabase_admin": True, "postgres": False}
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{own_cluster.port}/postgres") as conn:
        assert conn.execute("select current_user, has_database_privilege('postgres', 'create')").fetchone() \
            == ("postgres", True)


def test_a_cluster_made_by_older_koepon_is_re_created(own_cluster, capfd):
    # What older koepon did: initdb with `postgres` as the bootstrap superuser, no marker.
    # (init() makes the directories and log with the right owner; its data is replaced.)
    own_cluster.init()
    data = own_cluster.data
    own_cluster._run(["find", str(data), "-mindepth", "1", "-delete"])
    res = own_cluster._run([str(bindir() / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                            "-E", "UTF8", "--locale=C.UTF-8"], check=False)
    assert res.returncode == 0, res.stderr
    assert not (data / LAYOUT_MARKER).exists()
    own_cluster.start()
    assert "re-creating the private cluster" in capfd.readouterr().err
    assert (data / LAYOUT_MARKER).exists()
    assert _roles(own_cluster.port) == {"supabase_admin": True, "postgres": False}
    # and a second start keeps it
    own_cluster.stop()
    assert own_cluster.start() is True
    assert "re-creating" not in capfd.readouterr().err
