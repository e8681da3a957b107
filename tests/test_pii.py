"""E-mail and public-IP anonymisation."""

from __future__ import annotations

import pytest

from llmforge.config import PiiConfig
from tasks.data.pii import anonymize_pii, is_public_ipv4

CFG = PiiConfig()


def test_emails_are_replaced() -> None:
    text = "Write to jane.doe+news@mail.example.co.uk or J_Smith@Company.COM, or root@[192.168.0.1]."
    out, count = anonymize_pii(text, CFG)
    assert out == "Write to email@example.com or email@example.com, or email@example.com."
    assert count == 3


def test_public_ips_are_replaced() -> None:
    out, count = anonymize_pii("Servers 8.8.8.8 and 93.184.216.34. Done", CFG)
    assert out == "Servers 0.0.0.0 and 0.0.0.0. Done"
    assert count == 2


@pytest.mark.parametrize(
    "address",
    ["10.0.0.1", "10.255.1.2", "192.168.1.1", "172.16.5.4", "127.0.0.1", "169.254.1.1", "100.64.0.1", "0.0.0.0", "192.0.2.1", "255.255.255.255"],
)
def test_non_public_ips_stay(address: str) -> None:
    text = f"Connect to {address} now."
    assert anonymize_pii(text, CFG) == (text, 0)
    assert not is_public_ipv4(address)


@pytest.mark.parametrize(
    "text",
    [
        "Upgrade to version 1.2.3 today.",
        "Release 2.10.4-beta is out.",
        "Parts 1.2.3.4.5 and 11.22.33.444 are not addresses.",
        "Leading zeros 08.08.08.08 make no valid address.",
        "Pi is 3.14159 and e is 2.71828.",
        "No at sign here, only example.com.",
    ],
)
def test_look_alikes_stay(text: str) -> None:
    assert anonymize_pii(text, CFG) == (text, 0)


def test_custom_replacements_and_count() -> None:
    cfg = PiiConfig(email_replacement="<EMAIL>", ip_replacement="<IP>")
    out, count = anonymize_pii("a@b.org 1.1.1.1 c@d.net 10.1.1.1", cfg)
    assert (out, count) == ("<EMAIL> <IP> <EMAIL> 10.1.1.1", 3)
