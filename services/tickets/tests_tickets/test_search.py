"""Full-text search: how text becomes terms (fast), and what a searcher sees on the real store."""

import asyncio
from collections.abc import Iterable
from typing import Any

import pytest
from tickets import search
from tickets.search import (
    BUCKET,
    MAX_QUERY_CHARS,
    MAX_TERMS_PER_TEXT,
    InvalidQuery,
    SearchIndex,
    bulk_documents,
    decode_cursor,
    encode_cursor,
    query_terms,
    ticket_texts,
    tokens,
)

# --------------------------------------------------------------------------- terms (no store)


def test_nordic_letters_survive_and_case_does_not_matter() -> None:
    assert tokens("Åsa Öberg, Ørjan Ærø och Märta") == {"åsa", "öberg", "ørjan", "ærø", "och", "märta"}
    assert tokens("ÅSA") == tokens("åsa") == tokens("Åsa")


def test_letters_written_in_two_unicode_forms_give_the_same_term() -> None:
    decomposed = "A\u030asa"  # A + combining ring above, as some mail clients send it
    assert tokens(decomposed) == tokens("Åsa")
    assert tokens("ﬁle ＡＢＣ") == {"file", "abc"}


def test_punctuation_and_underscores_separate_words() -> None:
    assert tokens("skrivaren,trasig!(igen)...hej_då") == {"skrivaren", "trasig", "igen", "hej", "då"}


def test_an_email_address_is_a_term_whole_and_by_its_local_part_and_domain() -> None:
    found = tokens("Från: Kund.Namn@Example.SE.")
    assert {"kund.namn@example.se", "kund.namn", "example.se", "kund", "namn", "example", "se"} <= found


def test_an_address_is_found_after_a_long_run_of_letters_and_at_signs() -> None:
    found = tokens("x" * 5000 + "@ " + "@" * 50 + " skriv till Kund@Example.se@ idag")
    assert {"kund@example.se", "skriv", "idag"} <= found


def test_words_of_one_letter_and_words_longer_than_forty_letters_are_not_terms() -> None:
    assert tokens("a b 1 ok") == {"ok"}
    assert tokens("x" * 41 + " " + "y" * 40) == {"y" * 40}


def test_a_huge_text_gives_at_most_the_capped_number_of_terms_first_words_first() -> None:
    text = " ".join(f"ord{i}" for i in range(MAX_TERMS_PER_TEXT * 3))
    found = tokens(text)
    assert len(found) == MAX_TERMS_PER_TEXT
    assert "ord0" in found


def test_a_query_with_an_address_asks_for_the_address_and_the_other_words() -> None:
    assert sorted(query_terms("kund@example.se  Skrivaren")) == ["kund@example.se", "skrivaren"]


def test_a_query_of_nothing_or_one_letter_words_asks_for_nothing() -> None:
    assert query_terms("") == []
    assert query_terms(" a b c ! ") == []


def test_a_query_that_is_too_long_or_has_too_many_words_or_is_not_text_is_refused() -> None:
    with pytest.raises(InvalidQuery):
        query_terms("ord " * MAX_QUERY_CHARS)
    with pytest.raises(InvalidQuery):
        query_terms("ett två tre fyra fem sex sju åtta nio")
    with pytest.raises(InvalidQuery):
        query_terms({"$gt": ""})  # type: ignore[arg-type]


def test_operator_looking_text_becomes_plain_words() -> None:
    assert query_terms('{"$gt": ""}') == ["gt"]
    assert query_terms("$where: this.a|b") == ["where", "this"]


def test_a_ticket_is_searchable_by_title_description_comments_requester_and_organisation() -> None:
    doc = {
        "_id": "t1",
        "number": 7,
        "title": "Skrivaren",
        "description": "trasig",
        "requester": {"email": "asa@example.se", "name": "Åsa Öberg"},
        "organisation": "Kontoret AB",
        "comments": [{"text": "första"}, {"text": "andra"}, {"html": "<p>no text</p>"}],
    }
    found = search.ticket_terms(ticket_texts(doc))
    assert {"skrivaren", "trasig", "asa@example.se", "åsa", "öberg", "kontoret", "första", "andra"} <= set(found)


def test_a_ticket_without_optional_fields_still_has_texts() -> None:
    assert ticket_texts({"_id": "t", "number": 1, "title": "Hej", "requester": {"email": "a@b.se", "name": None}}) == [
        "Hej",
        "a@b.se",
    ]


def test_a_ticket_belongs_in_one_posting_per_term_of_its_own_bucket() -> None:
    found = search.postings_for(BUCKET + 5, ["Hej hej", "Åsa"])
    assert found == {"hej|000000001": [BUCKET + 5], "åsa|000000001": [BUCKET + 5]}


def test_bulk_documents_hold_each_term_once_per_bucket() -> None:
    docs = list(bulk_documents([(1, ["hej"]), (2, ["hej då"]), (BUCKET + 1, ["hej"])]))
    assert sorted(doc["_id"] for doc in docs) == ["då|000000000", "hej|000000000", "hej|000000001"]


def test_bulk_documents_refuse_to_go_back_to_a_finished_bucket() -> None:
    with pytest.raises(ValueError, match="sort the pairs"):
        list(bulk_documents([(BUCKET + 1, ["hej"]), (1, ["hej"])]))


def test_a_cursor_that_was_not_made_by_search_is_refused() -> None:
    assert decode_cursor(encode_cursor(123)) == 123
    for bad in ("", "not base64!", encode_cursor(-1), "eyJiZWxvdyI6ICJ4In0="):
        with pytest.raises(InvalidQuery):
            decode_cursor(bad)


# --------------------------------------------------------------------------- on the real store


class Tickets:
    """What the tickets service would give `search`: summaries of the tickets a viewer may see."""

    def __init__(self) -> None:
        self.titles: dict[int, str] = {}
        self.hidden: set[int] = set()
        self.asked: list[int] = []

    async def visible(self, numbers: list[int]) -> list[dict[str, Any]]:
        self.asked.extend(numbers)
        return [{"number": n, "title": self.titles[n]} for n in numbers if n in self.titles and n not in self.hidden]


async def indexed(mongo: Any, tickets: Tickets, items: Iterable[tuple[int, list[str]]]) -> SearchIndex:
    index = SearchIndex(mongo)
    await index.ensure_indexes()
    for number, texts in items:
        tickets.titles[number] = texts[0]
        await index.index_texts(number, texts)
    return index


async def numbers(index: SearchIndex, tickets: Tickets, query: str, **kwargs: Any) -> list[int]:
    page, _ = await index.search(query, visible=tickets.visible, **kwargs)
    return [hit["number"] for hit in page]


async def everything(index: SearchIndex, tickets: Tickets, query: str, limit: int) -> tuple[list[int], int]:
    """Follow the cursor to the end; return every hit and how many pages it took."""
    found: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        page, cursor = await index.search(query, visible=tickets.visible, limit=limit, cursor=cursor)
        pages += 1
        found.extend(hit["number"] for hit in page)
        if cursor is None:
            return found, pages
        assert pages < 1000


async def test_a_ticket_is_found_by_a_word_in_one_of_its_comments(mongo: Any) -> None:
    tickets = Tickets()
    index = await indexed(
        mongo,
        tickets,
        [
            (1, ["Skrivaren är trasig", "Den piper", "Har ni provat att starta om?", "Ja, tonern var slut"]),
            (2, ["Fakturan saknas", "Var är fakturan för mars?"]),
        ],
    )
    assert await numbers(index, tickets, "tonern") == [1]
    assert await numbers(index, tickets, "TONERN!") == [1]


async def test_a_ticket_is_found_by_its_requester_and_organisation(mongo: Any) -> None:
    tickets = Tickets()
    doc = {
        "_id": "x",
        "number": 3,
        "title": "Inloggning",
        "description": "Jag kommer inte in",
        "requester": {"email": "Asa.Oberg@Kontoret.se", "name": "Åsa Öberg"},
        "organisation": "Kontoret Ærø AB",
        "comments": [],
    }
    index = await indexed(mongo, tickets, [(3, ticket_texts(doc)), (4, ["Annat ärende", "asa@annat.se"])])
    assert await numbers(index, tickets, "asa.oberg@kontoret.se") == [3]
    assert await numbers(index, tickets, "ÅSA öberg") == [3]
    assert await numbers(index, tickets, "ærø") == [3]
    assert await numbers(index, tickets, "kontoret.se") == [3]


async def test_every_word_of_the_query_must_be_in_the_ticket(mongo: Any) -> None:
    tickets = Tickets()
    index = await indexed(
        mongo,
        tickets,
        [(1, ["skrivaren trasig"]), (2, ["skrivaren fungerar"]), (3, ["trasig dator"]), (4, ["Trasig", "skrivaren"])],
    )
    assert await numbers(index, tickets, "skrivaren trasig") == [4, 1]
    assert await numbers(index, tickets, "skrivaren trasig dator") == []


async def test_a_word_no_ticket_has_gives_nothing_even_next_to_common_words(mongo: Any) -> None:
    tickets = Tickets()
    index = await indexed(mongo, tickets, [(n, ["hej skrivaren"]) for n in range(1, 6)])
    assert await numbers(index, tickets, "finnsinte") == []
    assert await numbers(index, tickets, "hej finnsinte") == []
    assert tickets.asked == []


async def test_empty_and_one_letter_queries_give_nothing(mongo: Any) -> None:
    tickets = Tickets()
    index = await indexed(mongo, tickets, [(1, ["a b c hej"])])
    assert await index.search("", visible=tickets.visible) == ([], None)
    assert await index.search("a b", visible=tickets.visible) == ([], None)


async def test_newest_tickets_come_first_across_buckets(mongo: Any) -> None:
    spread = [3, BUCKET - 1, BUCKET, 2 * BUCKET + 5, 7 * BUCKET + 1]
    tickets = Tickets()
    index = await indexed(
        mongo, tickets, [(n, [f"ärende {n} om lösenord"]) for n in (spread[2], *spread[:2], *spread[3:])]
    )
    assert await numbers(index, tickets, "lösenord") == sorted(spread, reverse=True)
    assert await numbers(index, tickets, "lösenord ärende") == sorted(spread, reverse=True)


async def test_paging_with_the_cursor_returns_each_hit_exactly_once(mongo: Any) -> None:
    tickets = Tickets()
    wanted = list(range(1, 3 * BUCKET, 97))
    others = [n for n in range(50, 3 * BUCKET, 211) if n not in set(wanted)]
    texts = {n: ["skrivaren trasig"] for n in wanted} | {n: ["skrivaren hel"] for n in others}
    tickets.titles = {n: t[0] for n, t in texts.items()}
    index = SearchIndex(mongo)
    await index.ensure_indexes()
    await index.bulk_load(sorted(texts.items()))
    found, pages = await everything(index, tickets, "trasig skrivaren", limit=20)
    assert found == sorted(wanted, reverse=True)
    assert pages == -(-len(wanted) // 20)


async def test_tickets_the_viewer_may_not_see_are_left_out_and_the_page_is_still_full(mongo: Any) -> None:
    tickets = Tickets()
    index = await indexed(mongo, tickets, [(n, [f"lösenord {n}"]) for n in range(1, 61)])
    tickets.hidden = {n for n in range(1, 61) if n % 3}
    page, cursor = await index.search("lösenord", visible=tickets.visible, limit=10)
    assert [hit["number"] for hit in page] == [60, 57, 54, 51, 48, 45, 42, 39, 36, 33]
    rest, _ = await everything(index, tickets, "lösenord", limit=10)
    assert rest == [n for n in range(60, 0, -1) if n % 3 == 0]


async def test_a_viewer_who_sees_almost_nothing_gets_a_cursor_instead_of_a_scan_of_everything(
    mongo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "MAX_CANDIDATES", 40)
    tickets = Tickets()
    index = SearchIndex(mongo)
    await index.ensure_indexes()
    items = [(n, [f"vpn fungerar inte {n}"]) for n in range(1, 301)]
    tickets.titles = {n: texts[0] for n, texts in items}
    await index.bulk_load(items)
    tickets.hidden = {n for n in range(1, 301) if n != 7}
    page, cursor = await index.search("vpn", visible=tickets.visible, limit=10)
    assert page == []
    assert cursor is not None
    assert len(tickets.asked) <= 40
    found, _ = await everything(index, tickets, "vpn", limit=10)
    assert found == [7]


async def test_a_slow_visibility_check_makes_search_return_early_with_a_cursor_that_loses_nothing(mongo: Any) -> None:
    tickets = Tickets()
    index = SearchIndex(mongo, budget=0.05)
    await index.ensure_indexes()
    items = [(n, [f"skärmen flimrar {n}"]) for n in range(1, 201)]
    tickets.titles = {n: texts[0] for n, texts in items}
    tickets.hidden = {n for n in range(1, 201) if n % 10}
    await index.bulk_load(items)

    async def slow(numbers: list[int]) -> list[dict[str, Any]]:
        await asyncio.sleep(0.06)
        return await tickets.visible(numbers)

    page, cursor = await index.search("skärmen", visible=slow, limit=15)
    assert [hit["number"] for hit in page] == [200, 190]  # only the first batch, 200 down to 185, was checked
    assert cursor is not None
    found: list[int] = [hit["number"] for hit in page]
    while cursor is not None:
        page, cursor = await index.search("skärmen", visible=slow, limit=15, cursor=cursor)
        found.extend(hit["number"] for hit in page)
    assert found == list(range(200, 0, -10))


async def test_indexing_the_same_ticket_twice_changes_nothing(mongo: Any) -> None:
    tickets = Tickets()
    texts = ["Skrivaren är trasig", "kund@example.se", "Kund Kundsson"]
    index = await indexed(mongo, tickets, [(5, texts), (6, ["skrivaren"])])
    before = await index.postings.find({}).sort("_id", 1).to_list()
    await index.index_texts(5, texts)
    await index.index_texts(5, reversed(texts))
    assert await index.postings.find({}).sort("_id", 1).to_list() == before
    assert await numbers(index, tickets, "skrivaren") == [6, 5]


async def test_a_new_comment_makes_the_ticket_findable_by_its_words_and_keeps_the_old_ones(mongo: Any) -> None:
    tickets = Tickets()
    index = await indexed(mongo, tickets, [(8, ["Skrivaren är trasig"])])
    await index.index_texts(8, ["Nu luktar den bränt"])
    assert await numbers(index, tickets, "bränt skrivaren") == [8]


async def test_after_a_title_change_the_ticket_is_no_longer_found_by_the_old_title(mongo: Any) -> None:
    tickets = Tickets()
    index = await indexed(mongo, tickets, [(9, ["Skrivaren är trasig", "Den piper"]), (10, ["Skrivaren piper"])])
    await index.reindex(9, ["Datorn är trasig", "Den piper"])
    assert await numbers(index, tickets, "skrivaren") == [10]
    assert await numbers(index, tickets, "datorn") == [9]
    assert await numbers(index, tickets, "piper") == [10, 9]


async def test_bulk_loaded_tickets_are_found_and_can_be_updated_like_indexed_ones(mongo: Any) -> None:
    tickets = Tickets()
    index = SearchIndex(mongo)
    await index.ensure_indexes()
    items = [(n, [f"Leverans {n} försenad", f"kund{n}@example.se"]) for n in range(1, 40)]
    tickets.titles = {n: texts[0] for n, texts in items}
    await index.bulk_load(items)
    await indexed(mongo, tickets, [(40, ["Leverans 40 försenad"])])
    assert await numbers(index, tickets, "försenad", limit=3) == [40, 39, 38]
    assert await numbers(index, tickets, "kund12@example.se") == [12]
    await index.reindex(39, ["Leverans 39 framme"])
    assert await numbers(index, tickets, "försenad", limit=3) == [40, 38, 37]


async def test_a_bulk_load_that_is_run_again_keeps_what_is_there(mongo: Any) -> None:
    tickets = Tickets()
    index = SearchIndex(mongo)
    await index.ensure_indexes()
    items = [(n, [f"Router {n} startar om", "hela tiden"]) for n in range(1, 30)]
    tickets.titles = {n: texts[0] for n, texts in items}
    first = await index.bulk_load(items)
    assert await index.bulk_load(items) == 0
    assert first > 0
    assert await numbers(index, tickets, "router tiden", limit=100) == list(range(29, 0, -1))


async def test_tickets_of_one_bucket_indexed_at_the_same_time_are_all_found(mongo: Any) -> None:
    tickets = Tickets()
    index = await indexed(mongo, tickets, [])
    tickets.titles = {n: "samtidigt" for n in range(1, 21)}
    await asyncio.gather(*(index.index_texts(n, ["samtidigt indexerad", f"nummer{n}"]) for n in range(1, 21)))
    assert await numbers(index, tickets, "samtidigt indexerad") == list(range(20, 0, -1))


async def test_operator_looking_input_is_harmless(mongo: Any) -> None:
    tickets = Tickets()
    index = await indexed(
        mongo, tickets, [(1, ['Felkod {"$gt": ""} i loggen']), (2, ["Vanligt ärende"]), (3, ["$where|000000001"])]
    )
    for query in ['{"$gt": ""}', "$where", "$ne", ".*", "\x00", "|", "000000000", '{"$regex": ".*"}']:
        page, _ = await index.search(query, visible=tickets.visible)
        assert 2 not in [hit["number"] for hit in page], query
    assert await numbers(index, tickets, '{"$gt": ""}') == [1]
    assert await numbers(index, tickets, "where") == [3]
    with pytest.raises(InvalidQuery):
        await index.search({"$gt": ""}, visible=tickets.visible)  # type: ignore[arg-type]
    with pytest.raises(InvalidQuery):
        await index.search("x" * 10_000, visible=tickets.visible)
    with pytest.raises(InvalidQuery):
        await index.search("gt", visible=tickets.visible, cursor='{"$gt": ""}')
    assert sorted(await mongo.list_collection_names()) == ["search_postings", "search_tickets"]


async def test_results_stay_the_same_when_changed_postings_are_compacted(mongo: Any) -> None:
    tickets = Tickets()
    spread = [n * 64 + 1 for n in range(3 * search.SEAL_AT)]  # one changed field per ticket in the same posting
    index = await indexed(mongo, tickets, [(n, ["kaffemaskinen läcker"]) for n in spread])
    await index.reindex(spread[1], ["kaffemaskinen fungerar"])
    expected = sorted(set(spread) - {spread[1]}, reverse=True)
    assert await numbers(index, tickets, "läcker", limit=100) == expected
    assert "p" in (await index.postings.find_one({"t": "läcker"}) or {})  # the first search compacted it
    assert await numbers(index, tickets, "läcker", limit=100) == expected
    await index.index_texts(spread[1], ["läcker igen"])
    assert await numbers(index, tickets, "läcker", limit=100) == sorted(spread, reverse=True)


async def test_a_ticket_indexed_while_its_postings_are_being_compacted_is_not_lost(mongo: Any) -> None:
    tickets = Tickets()
    index = await indexed(mongo, tickets, [(n * 64, ["diskmaskinen"]) for n in range(1, 3 * search.SEAL_AT)])
    read_before = await index.postings.find({}).to_list()
    await indexed(mongo, tickets, [(5, ["diskmaskinen"])])
    await index._seal(read_before)  # a compaction that read the postings before ticket 5 was indexed
    found = await numbers(index, tickets, "diskmaskinen", limit=100)
    assert 5 in found
    assert len(found) == 3 * search.SEAL_AT - 1 + 1


@pytest.mark.asyncio
async def test_tickets_indexed_at_the_same_time_share_their_posting_writes_and_all_are_found(mongo: Any) -> None:
    tickets = Tickets()
    index = await indexed(mongo, tickets, [])
    writes = 0
    real = index.postings.bulk_write

    async def counting(ops: Any, **kwargs: Any) -> Any:
        nonlocal writes
        writes += len(ops)
        return await real(ops, **kwargs)

    index.postings.bulk_write = counting  # type: ignore[method-assign]
    texts = {n: [f"Skrivaren på plan {n}", f"ärende{n} toner"] for n in range(1, 21)}
    tickets.titles.update({n: t[0] for n, t in texts.items()})
    await asyncio.gather(*(index.index_texts(n, t) for n, t in texts.items()))
    assert await numbers(index, tickets, "skrivaren toner") == list(range(20, 0, -1))
    assert await numbers(index, tickets, "ärende7") == [7]
    # one update each for the shared words and the one distinct word per ticket, not one per ticket and word
    assert writes < sum(len(set(" ".join(t).lower().split())) for t in texts.values()) / 2
