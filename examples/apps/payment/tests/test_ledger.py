import pytest

from payment.ledger import Entry, Ledger, UnbalancedTransaction, record_payment, record_refund


def test_payment_moves_money_and_fee():
    ledger = Ledger()
    record_payment(ledger, "p1", 10_000, 320)
    assert ledger.balance("customer") == -10_000
    assert ledger.balance("merchant") == 9_680
    assert ledger.balance("fees") == 320
    assert ledger.trial_balance() == 0


def test_unbalanced_transaction_is_refused_and_not_recorded():
    ledger = Ledger()
    with pytest.raises(UnbalancedTransaction, match="sum to 5"):
        ledger.post("bad", [Entry("a", 10), Entry("b", -5)])
    assert ledger.transactions == []
    assert ledger.balance("a") == 0


def test_single_entry_is_refused():
    with pytest.raises(UnbalancedTransaction, match="two entries"):
        Ledger().post("lonely", [Entry("a", 0)])


def test_refund_reverses_a_payment():
    ledger = Ledger()
    record_payment(ledger, "p1", 10_000, 320)
    record_refund(ledger, "p1", 10_000, 290)
    assert ledger.balance("customer") == 0
    assert ledger.balance("fees") == 30
    assert ledger.balance("merchant") == -30
    assert ledger.trial_balance() == 0


def test_history_lists_transactions_touching_an_account():
    ledger = Ledger()
    record_payment(ledger, "p1", 1_000, 60)
    ledger.post("transfer", [Entry("merchant", -100), Entry("bank", 100)])
    assert [tx.description for tx in ledger.history("bank")] == ["transfer"]
    assert [tx.description for tx in ledger.history("merchant")] == ["payment p1", "transfer"]


def test_transaction_ids_are_sequential():
    ledger = Ledger()
    first = record_payment(ledger, "p1", 1_000, 60)
    second = record_payment(ledger, "p2", 2_000, 88)
    assert (first.id, second.id) == (1, 2)
