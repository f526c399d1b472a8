"""A small double-entry ledger: every transaction's entries sum to zero."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field


class UnbalancedTransaction(ValueError):
    pass


@dataclass(frozen=True)
class Entry:
    account: str
    amount: int  # positive = debit, negative = credit


@dataclass(frozen=True)
class Transaction:
    id: int
    description: str
    entries: tuple[Entry, ...]


@dataclass
class Ledger:
    transactions: list[Transaction] = field(default_factory=list)
    _balances: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def post(self, description: str, entries: list[Entry]) -> Transaction:
        if len(entries) < 2:
            raise UnbalancedTransaction("a transaction needs at least two entries")
        total = sum(e.amount for e in entries)
        if total != 0:
            raise UnbalancedTransaction(f"entries of {description!r} sum to {total}, not 0")
        tx = Transaction(len(self.transactions) + 1, description, tuple(entries))
        self.transactions.append(tx)
        for e in entries:
            self._balances[e.account] += e.amount
        return tx

    def balance(self, account: str) -> int:
        return self._balances.get(account, 0)

    def history(self, account: str) -> list[Transaction]:
        return [tx for tx in self.transactions if any(e.account == account for e in tx.entries)]

    def trial_balance(self) -> int:
        """Sum of all balances; zero in a consistent ledger."""
        return sum(self._balances.values())


def record_payment(ledger: Ledger, payment_id: str, amount: int, fee: int) -> Transaction:
    """Customer pays ``amount``; the merchant gets it minus ``fee``, which goes to the fees account."""
    return ledger.post(f"payment {payment_id}", [
        Entry("customer", -amount),
        Entry("merchant", amount - fee),
        Entry("fees", fee),
    ])


def record_refund(ledger: Ledger, payment_id: str, amount: int, fee_returned: int) -> Transaction:
    return ledger.post(f"refund {payment_id}", [
        Entry("customer", amount),
        Entry("merchant", -(amount - fee_returned)),
        Entry("fees", -fee_returned),
    ])
