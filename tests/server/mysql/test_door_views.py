"""View definitions as MariaDB stores them map view columns to base columns for masking."""

from __future__ import annotations

from hoop.core.masking import ColumnRef
from hoop.server.mysql.views import view_columns


def test_plain_aliased_and_computed_view_columns() -> None:
    cols = view_columns(
        "select `app`.`c`.`id` AS `id`,`app`.`c`.`email` AS `contact`,"
        "concat(`app`.`c`.`email`,'x') AS `mixed` from `app`.`customers` `c`"
    )
    assert cols["contact"] == ColumnRef("app", "customers", "email")
    assert cols["id"] == ColumnRef("app", "customers", "id")
    assert cols["mixed"] is None  # computed: left to the content detectors


def test_unparseable_definition_maps_nothing() -> None:
    assert view_columns("select from where (") == {}
