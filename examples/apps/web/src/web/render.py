"""HTML pages as strings; every value from the service is escaped."""

from __future__ import annotations

from html import escape
from typing import Any

from web.formatting import format_money, method_label, status_label


def render_confirmation(payment: dict[str, Any]) -> str:
    total = payment["amount"]
    rows = [
        ("Payment", payment["id"]),
        ("Amount", format_money(total, payment["currency"])),
        ("Fee", format_money(payment.get("fee", 0), payment["currency"])),
        ("Method", method_label(payment["method"], payment.get("card_last4"))),
        ("Status", status_label(payment["status"])),
    ]
    body = "\n".join(f"  <tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
    heading = "Thank you for your payment" if payment["status"] == "confirmed" else "Please confirm your payment"
    return (f'<section class="confirmation" data-payment-id="{escape(payment["id"])}">\n'
            f"<h1>{heading}</h1>\n<table>\n{body}\n</table>\n</section>")


def render_error(message: str) -> str:
    return f'<section class="error"><h1>Something went wrong</h1><p>{escape(message)}</p></section>'
