import pytest

from reference_index.catalog import Catalog, CatalogError, sqlite_url


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
        assert version.scalar() == "0001"
