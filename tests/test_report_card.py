"""The report card: one line per stage with its headline numbers."""

from __future__ import annotations

from tasks.report_card import report_card


def test_card_shows_each_stage_and_the_rl_gain() -> None:
    outcomes = [
        {"stage": "data", "status": "ran", "seconds": 12.0,
         "metrics": {"documents": 188, "responses": 300, "removed": {"url": 12}, "errors": {"non_html": 3}}},
        {"stage": "pretrain", "status": "skipped", "seconds": 100.0,
         "metrics": {"parameters": 10, "tokens_seen": 5, "initial_loss": 7.6, "final_loss": 0.4, "tokens_per_s": 9,
                     "val_bits_per_byte": 1.2}},
        {"stage": "rl", "status": "ran", "seconds": 30.0,
         "metrics": {"family": "two_number_lt100",
                     "before": {"problems": 500, "samples_per_problem": 16, "pass@1": 0.2, "pass@1_ci95_low": 0.18,
                                "pass@1_ci95_high": 0.22, "pass@16": 0.5, "pass@16_ci95_low": 0.45,
                                "pass@16_ci95_high": 0.55},
                     "after": {"problems": 500, "samples_per_problem": 16, "pass@1": 0.35, "pass@1_ci95_low": 0.32,
                               "pass@1_ci95_high": 0.38, "pass@16": 0.6, "pass@16_ci95_low": 0.55,
                               "pass@16_ci95_high": 0.65}}},
    ]
    card = report_card(outcomes)
    assert "| data | ran | 12.0 | 188 documents kept of 300 responses (12 removed, 3 unreadable) |" in card
    assert "val 1.2 bits/byte" in card
    assert "pass@1 0.2 [0.18, 0.22] → 0.35 [0.32, 0.38]" in card and "pass@16 0.5" in card
    assert "Stages run now: 2 of 3, 42.0 s" in card


def test_a_later_dataset_version_says_what_it_added_and_the_total() -> None:
    from tasks.report_card import headline_message

    outcome = {"stage": "data", "status": "ran", "metrics": {
        "version": 3, "new_documents": 4, "documents": 40, "responses": 9, "removed": {"minhash": 3}, "errors": {}}}
    assert headline_message(outcome) == "ran: version 3: 4 new documents kept of 9 responses (3 removed, 0 unreadable); 40 in all"
