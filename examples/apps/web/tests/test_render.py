from web.render import render_confirmation, render_error

PAYMENT = {"id": "pay-1", "amount": 2500, "currency": "EUR", "fee": 103, "method": "credit_card",
           "card_last4": "4242", "status": "pending"}


def test_pending_payment_asks_for_confirmation():
    html = render_confirmation(PAYMENT)
    assert "<h1>Please confirm your payment</h1>" in html
    assert "<td>Awaiting confirmation</td>" in html
    assert "<td>€25.00</td>" in html
    assert "<td>€1.03</td>" in html


def test_confirmed_payment_thanks_the_customer():
    html = render_confirmation({**PAYMENT, "status": "confirmed"})
    assert "<h1>Thank you for your payment</h1>" in html
    assert "<td>Confirmed</td>" in html


def test_card_is_shown_by_its_last_digits_only():
    html = render_confirmation(PAYMENT)
    assert "Credit card ending in 4242" in html
    assert 'data-payment-id="pay-1"' in html


def test_values_from_the_service_are_escaped():
    html = render_confirmation({**PAYMENT, "id": '"><script>alert(1)</script>'})
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_error_page_escapes_the_message():
    assert render_error("<b>down</b>") == (
        '<section class="error"><h1>Something went wrong</h1><p>&lt;b&gt;down&lt;/b&gt;</p></section>')
