"""Importing tickets from CSV and JSON through the `tickets import` command, on the real store and Kafka."""

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from tickets.cli import main
from tickets.importer import command_for, read_rows
from tickets.workflow import Viewer

CSV = """id,title,requester_email,requester_name,priority,tags,custom.serial
a-1,Skrivaren är trasig,kund@example.se,Kund Ett,high,printer;floor3,
a-2,Wifi borta,annan@example.se,,urgent,,
a-3,,tredje@example.se,,low,,
a-4,Åtkomst,not-an-address,,low,,
a-5,"Faktura, fel belopp",fjarde@example.se,Fjärde,medium,,
a-6,Okänt fält,femte@example.se,,low,,SN-9
"""


def test_rows_become_create_commands_with_lists_split_and_ids_stable(tmp_path: Path) -> None:
    path = tmp_path / "tickets.csv"
    path.write_text(CSV)
    rows = list(read_rows(path))
    admin = Viewer(id="import", role="admin")
    first = command_for(rows[0][1], source="tickets.csv", row_number=rows[0][0], actor=admin)
    assert first.fields["tags"] == ["printer", "floor3"] and first.requester is not None
    assert first.requester.name == "Kund Ett" and first.channel == "import"
    assert first.command_id == command_for(rows[0][1], source="other.csv", row_number=99, actor=admin).command_id


@pytest.mark.asyncio
async def test_the_import_command_creates_good_rows_reports_bad_ones_and_runs_again_safely(
    infra: Any, mongo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tickets.store import Store

    monkeypatch.setenv("HELPDESK_KAFKA_BOOTSTRAP", infra.bootstrap)
    monkeypatch.setenv("HELPDESK_MONGO_URL", infra.mongo_url)
    monkeypatch.setenv("HELPDESK_MONGO_DB", mongo.name)
    monkeypatch.setenv("HELPDESK_SERVICE_TOKEN", "import-test-token-0123456789abcdef")
    monkeypatch.setenv("HELPDESK_MESSAGE_ID_SECRET", "import-test-secret-0123456789abcdef")
    path = tmp_path / "tickets.csv"
    path.write_text(CSV)
    report = tmp_path / "report.txt"
    for _ in range(2):
        with pytest.raises(SystemExit) as done:
            await asyncio.to_thread(main, ["import", str(path), "--report", str(report)])
        assert done.value.code == 1  # some rows were rejected
    lines = report.read_text().splitlines()
    assert lines[0] == "created 2 tickets, rejected 4 rows"
    assert any(line.startswith("row 3:") and "priority" in line for line in lines)
    assert any(line.startswith("row 4:") and "title" in line for line in lines)
    assert any(line.startswith("row 7:") and "custom field" in line for line in lines)
    assert "row 5: requester_email" in capsys.readouterr().out
    store = Store(mongo)
    assert await store.tickets.count_documents({}) == 2  # the second run created nothing more
    faktura = await store.tickets.find_one({"title": "Faktura, fel belopp"})
    assert faktura["requester"] == {"email": "fjarde@example.se", "name": "Fjärde"}
    data = [{"title": "Från JSON", "requester_email": "json@example.se", "id": uuid.uuid4().hex}, ["not", "a", "row"]]
    json_path = tmp_path / "more.json"
    json_path.write_text(json.dumps(data))
    with pytest.raises(SystemExit):
        await asyncio.to_thread(main, ["import", str(json_path)])
    assert await store.tickets.count_documents({"channel": "import"}) == 3
