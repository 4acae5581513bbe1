import importlib.util
import io
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

import reference_index.catalog as catalog_module
from reference_index.catalog import Base, Catalog, CatalogError, sqlite_url

HEAD = "0004"
MIGRATIONS = Path(catalog_module.__file__).parent / "migrations"


def test_add_get_list_remove(tmp_path):
    cat = Catalog(sqlite_url(tmp_path / "c.db"))
    cat.add_channel("tf1-hd", "TF1 HD", owner="TF1", simulcast_group="tf1")
    cat.add_channel("arte", "Arte")
    assert [c.id for c in cat.channels()] == ["arte", "tf1-hd"]
    ch = cat.get("tf1-hd")
    assert ch.owner == "TF1" and ch.as_dict()["simulcast_group"] == "tf1"
    assert cat.get("arte").as_dict()["simulcast_group"] == "arte"
    cat.remove("arte")
    assert cat.get("arte") is None
    with pytest.raises(CatalogError, match="no channel"):
        cat.require("arte")


@pytest.mark.parametrize("bad", ["", "has space", "-lead", "x" * 65, "é"])
def test_bad_ids_are_refused(tmp_path, bad):
    with pytest.raises(CatalogError, match="channel id"):
        Catalog(sqlite_url(tmp_path / "c.db")).add_channel(bad, "name")


def test_duplicate_and_empty_name(tmp_path):
    cat = Catalog(sqlite_url(tmp_path / "c.db"))
    cat.add_channel("a", "A")
    with pytest.raises(CatalogError, match="already exists"):
        cat.add_channel("a", "A again")
    with pytest.raises(CatalogError, match="name"):
        cat.add_channel("b", "   ")


def test_reopening_keeps_data_and_schema_version(tmp_path):
    url = sqlite_url(tmp_path / "c.db")
    Catalog(url).add_channel("a", "A")
    again = Catalog(url)  # migrations run again: a no-op
    assert again.require("a").name == "A"
    with again.engine.connect() as conn:
        version = conn.exec_driver_sql("select version_num from alembic_version_catalog")
        assert version.scalar() == HEAD


# -- helpers ---------------------------------------------------------------------------------
@pytest.fixture
def cat(tmp_path):
    catalog = Catalog(sqlite_url(tmp_path / "c.db"))
    catalog.add_channel("tf1-hd", "TF1 HD", owner="TF1", simulcast_group="tf1")
    catalog.add_channel("tf1", "TF1", owner="TF1")
    catalog.add_channel("arte", "Arte")
    yield catalog
    catalog.close()


def _alembic(engine, action, revision):
    """Run an Alembic command on the catalog's migrations, as ``catalog.migrate`` does."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        action(cfg, revision)


def _count(catalog, table):
    with catalog.engine.connect() as conn:
        return conn.execute(text(f"select count(*) from {table}")).scalar()


CREDS = "http://panel.example:8080/live/alice/s3cretpw/101.m3u8"


# -- simulcast groups ------------------------------------------------------------------------
def test_group_of_and_members(cat):
    assert cat.group_of("tf1-hd") == "tf1"
    assert cat.group_of("tf1") == "tf1"  # no group: its own id
    assert cat.group_of("arte") == "arte"
    assert [c.id for c in cat.group_members("tf1")] == ["tf1", "tf1-hd"]
    assert [c.id for c in cat.group_members("arte")] == ["arte"]
    assert cat.group_members("nothing") == []
    with pytest.raises(CatalogError, match="no channel 'nope'"):
        cat.group_of("nope")


def test_a_channel_in_another_group_is_not_a_member_of_its_id(cat):
    cat.add_channel("france2", "France 2", simulcast_group="ftv")
    assert cat.group_members("france2") == []
    assert [c.id for c in cat.group_members("ftv")] == ["france2"]


# -- reference feeds -------------------------------------------------------------------------
def test_feed_crud(cat):
    a = cat.add_feed("tf1", CREDS, retention_hours=72, label=" TNT R1 ")
    b = cat.add_feed("tf1-hd", "https://cdn.example/tf1hd.m3u8", enabled=False)
    c = cat.add_feed("tf1", "/dev/capture0")
    assert (a.retention_hours, a.label, a.enabled) == (72.0, "TNT R1", True)
    assert b.retention_hours == 48.0 and b.label is None and not b.enabled
    assert a.created_at.tzinfo is not None
    assert [f.id for f in cat.feeds()] == [a.id, c.id, b.id]  # by channel, then id
    assert [f.id for f in cat.feeds("tf1")] == [a.id, c.id]
    assert [f.id for f in cat.feeds(enabled_only=True)] == [a.id, c.id]
    assert cat.set_feed_enabled(b.id, True).enabled
    assert [f.id for f in cat.feeds("tf1-hd", enabled_only=True)] == [b.id]
    assert not cat.set_feed_enabled(a.id, False).enabled and not cat.feed(a.id).enabled
    cat.remove_feed(c.id)
    assert [f.id for f in cat.feeds("tf1")] == [a.id]
    with pytest.raises(CatalogError, match=f"no feed {c.id}"):
        cat.remove_feed(c.id)
    with pytest.raises(CatalogError, match="no feed 999"):
        cat.set_feed_enabled(999, True)
    with pytest.raises(CatalogError, match="no channel 'nope'"):
        cat.feeds("nope")


def test_feed_url_is_kept_raw_but_shown_redacted(cat):
    feed = cat.add_feed("tf1", CREDS)
    assert cat.feeds()[0].url == CREDS  # ingestion needs the credentials
    shown = [feed.as_dict()["url"], repr(feed), str(feed), feed.redacted_url]
    for text_ in shown:
        assert "alice" not in text_ and "s3cretpw" not in text_
        assert "panel.example:8080" in text_ and "101.m3u8" in text_
    assert set(feed.as_dict()) == {
        "id", "channel_id", "url", "enabled", "retention_hours", "label", "created_at"
    }  # fmt: skip


def test_duplicate_feed_is_refused_per_channel(cat):
    cat.add_feed("tf1", CREDS)
    with pytest.raises(CatalogError, match="already exists for channel 'tf1'") as exc:
        cat.add_feed("tf1", CREDS)
    assert "s3cretpw" not in str(exc.value)
    cat.add_feed("tf1-hd", CREDS)  # another channel may use the same URL


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://alice:s3cretpw@x/a.ts", "must use http or https"),
        ("rtmp://x/live", "must use http or https"),
        ("relative/path.ts", "absolute path"),
        ("", "http"),
        ("http:///no-host.m3u8", "has no host"),
        ("http://x:99999/a.m3u8", "not a valid URL"),
        ("http://x/a b.m3u8", "without spaces"),
        ("http://x/a\x00.m3u8", "without spaces"),
    ],
)
def test_bad_feed_urls_are_refused(cat, url, message):
    with pytest.raises(CatalogError, match=message) as exc:
        cat.add_feed("tf1", url)
    assert "s3cretpw" not in str(exc.value)
    assert cat.feeds() == []


@pytest.mark.parametrize("hours", [0, -1, 24 * 365 + 0.5, math.nan, math.inf, "soon"])
def test_bad_retention_is_refused(cat, hours):
    with pytest.raises(CatalogError, match="retention"):
        cat.add_feed("tf1", "http://x/a.m3u8", retention_hours=hours)


def test_retention_bounds_are_inclusive_of_one_year(cat):
    assert cat.add_feed("tf1", "http://x/a.m3u8", retention_hours=24 * 365).retention_hours == (
        8760.0
    )
    assert cat.add_feed("tf1", "http://x/b.m3u8", retention_hours=0.01).retention_hours == 0.01


def test_feed_of_unknown_channel_is_refused(cat):
    with pytest.raises(CatalogError, match="no channel 'nope'"):
        cat.add_feed("nope", "http://x/a.m3u8")


# -- VOD / catch-up assets -------------------------------------------------------------------
def test_asset_crud_and_validation(cat):
    a = cat.add_asset("arte", "Le Dessous des cartes", "/media/arte/ddc-2024-03.mp4")
    b = cat.add_asset("tf1", "JT 20h", "https://replay.example/jt.m3u8?token=abcdef123")
    assert [x.id for x in cat.assets()] == [a.id, b.id]
    assert [x.title for x in cat.assets("tf1")] == ["JT 20h"]
    assert cat.assets()[1].source.endswith("token=abcdef123")
    assert "abcdef123" not in b.as_dict()["source"] and "abcdef123" not in repr(b)
    with pytest.raises(CatalogError, match="already exists"):
        cat.add_asset("arte", "again", "/media/arte/ddc-2024-03.mp4")
    with pytest.raises(CatalogError, match="title"):
        cat.add_asset("arte", "  ", "/media/x.mp4")
    with pytest.raises(CatalogError, match="asset source"):
        cat.add_asset("arte", "x", "x.mp4")
    with pytest.raises(CatalogError, match="no channel"):
        cat.add_asset("nope", "x", "/x.mp4")
    cat.remove_asset(a.id)
    assert [x.id for x in cat.assets()] == [b.id]
    with pytest.raises(CatalogError, match=f"no asset {a.id}"):
        cat.remove_asset(a.id)


# -- authorized distributors -----------------------------------------------------------------
def test_distributor_crud_and_normalisation(cat):
    start = datetime(2025, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))
    a = cat.add_distributor(
        "tf1",
        " Orange ",
        host_pattern="*.Orange.FR.",
        cidr="192.0.2.77/24",
        asn=3215,
        territory="fr-idf",
        valid_from=start,
        valid_to=datetime(2026, 1, 1),  # naive: UTC
    )
    assert (a.licensee, a.host_pattern, a.cidr, a.asn) == (
        "Orange",
        "*.orange.fr",
        "192.0.2.0/24",
        3215,
    )
    assert a.territory == "FR-IDF"
    assert a.valid_from == datetime(2025, 1, 1, tzinfo=UTC)
    assert a.valid_to == datetime(2026, 1, 1, tzinfo=UTC)
    b = cat.add_distributor("tf1-hd", "Free", cidr="::ffff:198.51.100.0/120", territory="France")
    assert b.cidr == "198.51.100.0/24" and b.territory == "France"
    c = cat.add_distributor("arte", "Bouygues", host_pattern="cdn.TÉLÉ.fr", asn=5410)
    assert c.host_pattern == "cdn.xn--tl-bjab.fr" and c.valid_from is None
    d = cat.add_distributor("arte", "SFR", cidr="2001:DB8:1::1/48")
    assert d.cidr == "2001:db8:1::/48"
    # read back from the database, not just what add_distributor built
    assert cat.distributors("tf1") == [a]
    assert [x.id for x in cat.distributors()] == [c.id, d.id, a.id, b.id]
    assert cat.distributors()[2].valid_from == a.valid_from
    assert a.as_dict()["valid_from"] == "2025-01-01T00:00:00+00:00"
    cat.remove_distributor(c.id)
    assert [x.id for x in cat.distributors("arte")] == [d.id]
    with pytest.raises(CatalogError, match=f"no distributor {c.id}"):
        cat.remove_distributor(c.id)
    with pytest.raises(CatalogError, match="no channel 'nope'"):
        cat.distributors("nope")


def test_distributor_ids_are_not_reused(cat):
    a = cat.add_distributor("tf1", "Orange", asn=3215)
    cat.remove_distributor(a.id)
    assert cat.add_distributor("tf1", "Orange", asn=3215).id != a.id


def test_distributor_needs_a_criterion_and_a_licensee(cat):
    with pytest.raises(CatalogError, match="needs a host pattern, a CIDR or an ASN"):
        cat.add_distributor("tf1", "Orange")
    with pytest.raises(CatalogError, match="needs a host pattern"):
        cat.add_distributor("tf1", "Orange", host_pattern="  ", cidr="")
    with pytest.raises(CatalogError, match="licensee must not be empty"):
        cat.add_distributor("tf1", "  ", asn=3215)
    with pytest.raises(CatalogError, match="no channel 'nope'"):
        cat.add_distributor("nope", "Orange", asn=3215)
    assert cat.distributors() == []


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("*", "must be a host name"),
        ("*.fr", "whole top-level domain"),
        ("a*.licensee.fr", "must be a host name"),
        ("cdn.*.licensee.fr", "must be a host name"),
        ("**.licensee.fr", "must be a host name"),
        ("*licensee.fr", "must be a host name"),
        ("https://cdn.licensee.fr", "must be a host name"),
        ("cdn.licensee.fr:443", "must be a host name"),
        ("cdn.licensee.fr/live", "must be a host name"),
        ("-cdn.licensee.fr", "must be a host name"),
        ("cdn_1.licensee.fr", "must be a host name"),
        ("cdn..licensee.fr", "must be a host name"),
        ("x" * 64 + ".fr", "must be a host name"),
        ("192.0.2.1", "is an IP address"),
        ("[2001:db8::1]", "is an IP address"),
        ("10.0.0", "must be a host name"),
    ],
)
def test_bad_host_patterns_are_refused(cat, pattern, message):
    with pytest.raises(CatalogError, match=message) as exc:
        cat.add_distributor("tf1", "Orange", host_pattern=pattern)
    assert repr(pattern.strip()) in str(exc.value)


@pytest.mark.parametrize(
    ("cidr", "message"),
    [
        ("192.0.2.0/33", "must be an IPv4 or IPv6 network"),
        ("cdn.licensee.fr", "must be an IPv4 or IPv6 network"),
        ("192.0.2.0/24,198.51.100.0/24", "must be an IPv4 or IPv6 network"),
        ("0.0.0.0/0", "wider than /8"),
        ("10.0.0.0/7", "wider than /8"),
        ("::/0", "wider than /16"),
        ("2000::/3", "wider than /16"),
    ],
)
def test_bad_cidrs_are_refused(cat, cidr, message):
    with pytest.raises(CatalogError, match=message) as exc:
        cat.add_distributor("tf1", "Orange", cidr=cidr)
    assert repr(cidr) in str(exc.value)


@pytest.mark.parametrize("asn", [0, -1, 2**32 - 1, 2**32, True, "3215", 3215.0])
def test_bad_asns_are_refused(cat, asn):
    with pytest.raises(CatalogError, match="ASN .* must be an integer from 1 to 4294967294"):
        cat.add_distributor("tf1", "Orange", asn=asn)


def test_largest_asn_fits_the_column(cat):
    d = cat.add_distributor("tf1", "Orange", asn=4_294_967_294)
    assert cat.distributors()[0].asn == d.asn == 4_294_967_294


def test_validity_window_must_not_be_empty(cat):
    t = datetime(2025, 6, 1, tzinfo=UTC)
    with pytest.raises(CatalogError, match="valid_from 2025-06-01T00:00:00\\+00:00 must be before"):
        cat.add_distributor("tf1", "Orange", asn=1, valid_from=t, valid_to=t)
    with pytest.raises(CatalogError, match="must be before valid_to"):
        cat.add_distributor("tf1", "Orange", asn=1, valid_from=t, valid_to=t - timedelta(days=1))
    # the same instant written in two time zones is still an empty window
    paris = t.astimezone(timezone(timedelta(hours=2)))
    with pytest.raises(CatalogError, match="must be before valid_to"):
        cat.add_distributor("tf1", "Orange", asn=1, valid_from=t, valid_to=paris)
    with pytest.raises(CatalogError, match="valid_to '2025-06-01' must be a datetime"):
        cat.add_distributor("tf1", "Orange", asn=1, valid_to="2025-06-01")
    only_start = cat.add_distributor("tf1", "Orange", asn=1, valid_from=t)
    assert only_start.valid_to is None


# -- cascade, foreign keys -------------------------------------------------------------------
def test_removing_a_channel_removes_its_feeds_assets_and_distributors(cat):
    cat.add_feed("tf1", CREDS)
    cat.add_asset("tf1", "JT", "/media/jt.mp4")
    cat.add_distributor("tf1", "Orange", asn=3215)
    kept = cat.add_distributor("tf1-hd", "Orange", asn=3215)
    cat.remove("tf1")
    for table in ("reference_feeds", "vod_assets"):
        assert _count(cat, table) == 0
    assert cat.distributors() == [kept]
    assert _count(cat, "authorized_distributors") == 1


def test_sqlite_enforces_foreign_keys(cat):
    with pytest.raises(IntegrityError), cat.engine.begin() as conn:
        conn.execute(
            text(
                "insert into reference_feeds (channel_id, url, created_at) "
                "values ('ghost', 'http://x/a', '2025-01-01 00:00:00')"
            )
        )


def test_database_refuses_a_distributor_without_criterion(cat):
    with pytest.raises(IntegrityError), cat.engine.begin() as conn:
        conn.execute(
            text(
                "insert into authorized_distributors (channel_id, licensee, created_at) "
                "values ('tf1', 'Orange', '2025-01-01 00:00:00')"
            )
        )


def test_feed_defaults_come_from_the_schema(cat):
    with cat.engine.begin() as conn:
        conn.execute(
            text(
                "insert into reference_feeds (channel_id, url, created_at) "
                "values ('tf1', 'http://x/a', '2025-01-01 00:00:00')"
            )
        )
    (feed,) = cat.feeds()
    assert feed.enabled is True and feed.retention_hours == 48.0
    assert feed.created_at == datetime(2025, 1, 1, tzinfo=UTC)


# -- migrations ------------------------------------------------------------------------------
def test_upgrade_from_a_0001_database_keeps_channels(tmp_path):
    url = sqlite_url(tmp_path / "old.db")
    engine = create_engine(url)
    _alembic(engine, command.upgrade, "0001")
    assert "reference_feeds" not in inspect(engine).get_table_names()
    with engine.begin() as conn:
        conn.execute(
            text(
                "insert into channels (id, name, owner, simulcast_group, created_at) "
                "values ('tf1', 'TF1', 'TF1 SA', 'tf1-group', '2024-05-01 12:00:00')"
            )
        )
    engine.dispose()

    cat = Catalog(url)  # runs 0002
    ch = cat.require("tf1")
    assert (ch.name, ch.owner, ch.simulcast_group) == ("TF1", "TF1 SA", "tf1-group")
    assert ch.created_at == datetime(2024, 5, 1, 12, tzinfo=UTC)
    tables = set(inspect(cat.engine).get_table_names())
    assert {"channels", "reference_feeds", "vod_assets", "authorized_distributors"} <= tables
    with cat.engine.connect() as conn:
        version = conn.exec_driver_sql("select version_num from alembic_version_catalog")
        assert version.scalar() == HEAD
    cat.add_feed("tf1", CREDS)
    cat.add_distributor("tf1", "Orange", host_pattern="*.orange.fr")
    cat.remove("tf1")  # cascade works on an upgraded database too
    assert _count(cat, "reference_feeds") == 0 and _count(cat, "authorized_distributors") == 0
    cat.close()


def test_downgrade_to_0001_and_back(tmp_path):
    url = sqlite_url(tmp_path / "c.db")
    cat = Catalog(url)
    cat.add_channel("tf1", "TF1")
    cat.add_feed("tf1", CREDS)
    _alembic(cat.engine, command.downgrade, "0001")
    assert set(inspect(cat.engine).get_table_names()) == {"channels", "alembic_version_catalog"}
    cat.close()
    again = Catalog(url)
    assert again.require("tf1").name == "TF1" and again.feeds() == []
    again.close()


def test_migrated_schema_matches_the_models(cat):
    with cat.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_server_default": True})
        diff = compare_metadata(ctx, Base.metadata)
    diff = [d for d in diff if not (d[0] == "remove_table" and d[1].name.startswith("alembic_"))]
    assert diff == []


def test_migrations_render_for_postgresql():
    """Offline (``--sql``) rendering with the PostgreSQL dialect: no server needed."""
    out = io.StringIO()
    ctx = MigrationContext.configure(
        dialect_name="postgresql", opts={"as_sql": True, "output_buffer": out}
    )
    for name in ("0001_channels", "0002_feeds_distributors"):
        path = MIGRATIONS / "versions" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"_migration_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        with Operations.context(ctx):
            module.upgrade()
            if name.startswith("0002"):
                module.downgrade()
    sql = out.getvalue()
    for fragment in (
        "CREATE TABLE reference_feeds",
        "id SERIAL NOT NULL",
        "enabled BOOLEAN DEFAULT true NOT NULL",
        "retention_hours FLOAT DEFAULT 48 NOT NULL",
        "valid_to TIMESTAMP WITH TIME ZONE",
        "asn BIGINT",
        "REFERENCES channels (id) ON DELETE CASCADE",
        "CONSTRAINT uq_reference_feeds_channel_id_url UNIQUE (channel_id, url)",
        "CREATE INDEX ix_authorized_distributors_channel_id",
        "DROP TABLE reference_feeds",
    ):
        assert fragment in sql, fragment
    assert sql.count("ON DELETE CASCADE") == 3
    assert "AUTOINCREMENT" not in sql  # SQLite-only keyword must not leak
