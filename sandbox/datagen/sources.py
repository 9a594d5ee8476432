"""Render appearances and gifts as the records each platform emits (Stripe, Donorbox, Classy, CSV)."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from sandbox.datagen.arrays import (
    STR,
    IntArray,
    StrArray,
    cat,
    choose,
    iso_date,
    iso_ms,
    lookup,
    pick,
    prefixed_ids,
    random_tokens,
    to_str,
)
from sandbox.datagen.consent import email_opt_in, preferences_per_gift
from sandbox.datagen.gifts import SOURCES
from sandbox.datagen.people import Table
from sandbox.datagen.tables import Columns, Gather, SourceTable
from sandbox.datagen.vocab import COUNTRY_CURRENCY, CURRENCIES, CURRENCY_SYMBOLS

STRIPE_API_VERSION = "2023-08-16"
BANK_HEADER = (
    "Reference",
    "Cheque No",
    "Deposit Date",
    "Donor Name",
    "Address 1",
    "Address 2",
    "City",
    "State/Province",
    "Postcode",
    "Country",
    "Phone",
    "Email",
    "Amount",
    "Currency",
    "Fund",
    "Appeal",
    "Tribute",
    "Do Not Mail",
    "Do Not Call",
    "Email Opt Out",
    "Deceased",
    "Contact Preferences",
)
EVENT_HEADER = (
    "Order ID",
    "Attendee ID",
    "Order Date",
    "First Name",
    "Last Name",
    "Email Address",
    "Mobile",
    "Street",
    "Street 2",
    "Town",
    "Region",
    "Zip",
    "Country Code",
    "Event Name",
    "Ticket Type",
    "Donation Amount",
    "Currency",
    "Marketing Opt-In",
    "SMS Opt-In",
    "Landing Page",
    "Dedication",
    "Preferences",
)
_FAILURES = (
    ("card_declined", "Your card was declined."),
    ("insufficient_funds", "Your card has insufficient funds."),
    ("expired_card", "Your card has expired."),
)
_INVOICE_FIELDS = {
    "custom_fields": None,
    "default_payment_method": None,
    "footer": None,
    "rendering_options": None,
}


def _none(value: str) -> str | None:
    return value or None


def decimal_strings(minor: IntArray, exponent: IntArray, thousands: bool = False) -> StrArray:
    """Format minor units as decimal strings with the currency's digits (``2500`` -> ``25.00``; yen as is)."""
    major = minor // 100
    cents = to_str(minor % 100, 2)
    if thousands:
        major_s = np.array([f"{m:,}" for m in np.where(exponent == 0, minor, major).tolist()], dtype=STR)
    else:
        major_s = to_str(np.where(exponent == 0, minor, major))
    out: StrArray = np.where(exponent == 0, major_s, cat(major_s, ".", cents)).astype(STR)
    return out


def _ids_by_name(values: Any, base: int) -> tuple[StrArray, IntArray]:
    """Number the distinct values in sorted order from ``base``; return them and each row's number.

    A ``Gather`` column is numbered through its (small) source, without materializing it.
    """
    # (np.searchsorted is not used: on StringDType arrays of long strings it returns wrong positions.)
    if not isinstance(values, Gather):
        names, inverse = np.unique(values, return_inverse=True)
        return names, base + inverse.reshape(-1).astype(np.int64)
    used = np.unique(values.index)  # only the values that occur are numbered
    used_names = values.source[used].tolist()
    names = np.array(sorted(set(used_names)), dtype=STR)
    number = {name: base + i for i, name in enumerate(names.tolist())}
    ids = np.full(len(values.source), -1, dtype=np.int64)
    ids[used] = [number[name] for name in used_names]
    return names, ids[values.index]


def _ids_by_time(rng: np.random.Generator, n: int, base: int) -> IntArray:
    return base + np.cumsum(rng.integers(1, 4, n))


def _address_ok(app: Table, rows: IntArray) -> np.ndarray:
    return np.asarray(np.strings.str_len(app["line1"][rows]) > 0)


def _full_name(app: Table, rows: IntArray) -> StrArray:
    return np.strings.strip(cat(app["first_name"][rows], " ", app["last_name"][rows]))


class Renderer:
    """Build every output table from persons, appearances, gifts and consents."""

    def __init__(  # noqa: PLR0917
        self,
        rng: np.random.Generator,
        persons: Table,
        apps: Table,
        gifts: Table,
        consents: Table,
        app_source: IntArray,
    ) -> None:
        """Keep the generated truth and precompute what several platforms share."""
        self.rng = rng
        self.persons = persons
        self.apps = apps
        self.gifts = gifts
        self.app_source = app_source
        n_gifts = len(gifts["ts"])
        self.prefs = preferences_per_gift(consents, n_gifts)
        self.opt_in = email_opt_in(consents, n_gifts)
        names, self.campaign_id = _ids_by_name(gifts["campaign"], 100_000)
        self.campaign_names = names
        self.designation_id = _ids_by_name(gifts["designation"], 9_000)[1]
        self.source_of_gift = gifts["source"]
        #: primary record id of each gift (filled as tables are built)
        self.gift_record = np.full(n_gifts, "", dtype=STR)
        self.gift_record_source = np.full(n_gifts, "", dtype=STR)
        self.links: dict[str, np.ndarray] = {}
        #: "First Last" of every appearance (shared by Stripe customers and charges)
        self.full_name = _full_name(apps, np.arange(len(app_source)))

    def tables(self) -> list[SourceTable]:
        """Return every output table, Stripe last (it links to Donorbox and Classy ids)."""
        donorbox = self.donorbox()
        classy = self.classy()
        bank = self.csv_bank()
        event = self.csv_event()
        return [*self.stripe(donorbox, classy), donorbox, classy, bank, event]

    def _gift_rows(self, source: int) -> IntArray:
        return np.flatnonzero(self.gifts["source"] == source)

    def _remember(self, name: str, rows: IntArray, ids: StrArray) -> None:
        self.gift_record[rows] = ids
        self.gift_record_source[rows] = name

    # ---------------------------------------------------------------- Donorbox
    def donorbox(self) -> SourceTable:
        """Render Donorbox API donation objects (amounts as strings, donor embedded)."""
        g, a, rng = self.gifts, self.apps, self.rng
        rows = self._gift_rows(1)
        n = len(rows)
        app = g["appearance"][rows]
        ids = to_str(_ids_by_time(rng, n, 40_000_000))
        app_ids = np.unique(app)
        donor_id = 2_000_000 + np.searchsorted(app_ids, app) * 3 + 7
        exp = g["exponent"][rows]
        amount = decimal_strings(g["amount_minor"][rows], exp)
        cur = g["currency"][rows]
        symbol = lookup(CURRENCY_SYMBOLS, cur)
        rate = lookup({k: v[1] for k, v in CURRENCIES.items()}, cur)
        usd_minor = np.round(g["amount_minor"][rows] * rate * np.where(exp == 0, 100, 1)).astype(np.int64)
        refunded = g["refund_minor"][rows]
        linked = g["linked"][rows]
        paypal_id = random_tokens(rng, n, 17, alphabet="base36")
        self._remember("donorbox/donations", rows, ids)
        country = a["country"][app]
        cols = {
            "id": ids.astype(np.int64) if n else np.zeros(0, dtype=np.int64),
            "date": iso_ms(g["ts"][rows]),
            "amount": amount,
            "formatted": cat(symbol, amount),
            "usd": decimal_strings(usd_minor, np.full(n, 2)),
            "fee": np.round(g["amount_minor"][rows] * 0.029 / np.where(exp == 0, 1, 100) + 0.3, 2),
            "currency": np.strings.lower(cur),
            "recurring": Gather(g["recurring"], rows),
            "first_recurring": g["recurring"][rows] & (g["installment"][rows] == 0),
            "refunded": decimal_strings(refunded, exp),
            "is_refunded": refunded > 0,
            "linked": linked,
            "paypal_id": np.strings.upper(paypal_id),
            "campaign_id": self.campaign_id[rows],
            "campaign": Gather(g["campaign"], rows),
            "donor_id": donor_id,
            "first": Gather(a["first_name"], app),
            "last": Gather(a["last_name"], app),
            "email": Gather(a["email"], app),
            "phone": Gather(a["phone"], app),
            "line1": Gather(a["line1"], app),
            "line2": Gather(a["line2"], app),
            "city": Gather(a["city"], app),
            "state": Gather(a["state"], app),
            "zip": Gather(a["postal_code"], app),
            "country": country,
            "employer": Gather(self.persons["employer"], g["person_idx"][rows]),
            "occupation": Gather(self.persons["occupation"], g["person_idx"][rows]),
            "opt_in": self.opt_in[rows] == 1,
            "anonymous": Gather(g["anonymous"], rows),
            "gift_aid": (country == "GB") & pick(rng, n, 0.6),
            "designation": Gather(g["designation"], rows),
            "comment": Gather(g["comment"], rows),
            "tribute_type": Gather(g["tribute_type"], rows),
            "honoree": Gather(g["honoree"], rows),
            "prefs": Gather(self.prefs, rows),
            "utm_source": Gather(g["utm_source"], rows),
            "utm_medium": Gather(g["utm_medium"], rows),
            "utm_campaign": Gather(g["utm_campaign"], rows),
            "utm_content": Gather(g["utm_content"], rows),
            "plan_id": np.where(g["recurring"][rows], 300_000 + np.searchsorted(app_ids, app), -1),
        }
        return SourceTable(
            "donorbox/donations",
            ids,
            g["person_idx"][rows],
            app,
            rows,
            cols,
            _donorbox_rows,
            bad_eligible=True,
        )

    # ---------------------------------------------------------------- Classy
    def classy(self) -> SourceTable:
        """Render Classy (GoFundMe Pro) transaction objects."""
        g, a, rng = self.gifts, self.apps, self.rng
        rows = self._gift_rows(2)
        n = len(rows)
        app = g["appearance"][rows]
        ids = to_str(_ids_by_time(rng, n, 70_000_000))
        app_ids = np.unique(app)
        exp = g["exponent"][rows]
        scale = np.where(exp == 0, 1.0, 100.0)
        gross = g["amount_minor"][rows] / scale
        fees = np.where(exp == 0, np.round(gross * 0.022 + 30), np.round(gross * 0.022 + 0.3, 2))
        failed = g["failed"][rows]
        refunded = g["refund_minor"][rows] > 0
        status = np.where(failed, "incomplete", np.where(refunded, "refunded", "success")).astype(STR)
        self._remember("classy/transactions", rows, ids)
        created = iso_ms(g["ts"][rows])
        refunded_at = np.where(refunded, iso_ms(g["refund_ts"][rows]), "").astype(STR)
        linked = g["linked"][rows]
        cols = {
            "id": ids.astype(np.int64) if n else np.zeros(0, dtype=np.int64),
            "status": status,
            "gross": gross,
            "fees": fees,
            "fee_on_top": Gather(g["cover_fee"], rows),
            "currency": Gather(g["currency"], rows),
            "created": created,
            "charged": np.where(failed, "", created).astype(STR),
            "refunded_at": refunded_at,
            "updated": np.where(refunded, refunded_at, created).astype(STR),
            "email": Gather(a["email"], app),
            "first": Gather(a["first_name"], app),
            "last": Gather(a["last_name"], app),
            "phone": Gather(a["phone"], app),
            "line1": Gather(a["line1"], app),
            "line2": Gather(a["line2"], app),
            "city": Gather(a["city"], app),
            "state": Gather(a["state"], app),
            "zip": Gather(a["postal_code"], app),
            "country": Gather(a["country"], app),
            "supporter_id": 5_000_000 + np.searchsorted(app_ids, app) * 2 + 1,
            "campaign_id": self.campaign_id[rows],
            "designation_id": self.designation_id[rows],
            "plan_id": np.where(g["recurring"][rows], 800_000 + np.searchsorted(app_ids, app), -1),
            "recurring": Gather(g["recurring"], rows),
            "gateway": np.where(linked | pick(rng, n, 0.7), "Stripe", "PayPal").astype(STR),
            "anonymous": Gather(g["anonymous"], rows),
            "gift_aid": (a["country"][app] == "GB") & pick(rng, n, 0.5),
            "comment": Gather(g["comment"], rows),
            "tribute_type": Gather(g["tribute_type"], rows),
            "honoree": Gather(g["honoree"], rows),
            "utm_source": Gather(g["utm_source"], rows),
            "utm_medium": Gather(g["utm_medium"], rows),
            "utm_campaign": Gather(g["utm_campaign"], rows),
            "utm_content": Gather(g["utm_content"], rows),
            "landing_url": Gather(g["landing_url"], rows),
            "prefs": Gather(self.prefs, rows),
        }
        return SourceTable(
            "classy/transactions",
            ids,
            g["person_idx"][rows],
            app,
            rows,
            cols,
            _classy_rows,
            bad_eligible=True,
        )

    # ---------------------------------------------------------------- CSV exports
    def csv_bank(self) -> SourceTable:
        """Render the bank/cheque deposit export (Windows-1252, ``Last, First`` names, US dates)."""
        g, a, p, rng = self.gifts, self.apps, self.persons, self.rng
        rows = self._gift_rows(3)
        n = len(rows)
        app = g["appearance"][rows]
        person = g["person_idx"][rows]
        ids = cat("CHQ-", to_str(np.arange(1, n + 1), 8))
        self._remember("csv/bank_cheque_export", rows, ids)
        day = iso_date(g["ts"][rows])
        us_date = cat(
            np.strings.slice(day, 5, 7), "/", np.strings.slice(day, 8, 10), "/", np.strings.slice(day, 0, 4)
        )
        name_style = pick(rng, n, 0.7)
        name = np.where(name_style, cat(a["last_name"][app], ", ", a["first_name"][app]), _full_name(a, app))
        prefs = self.prefs[rows]
        tribute = np.select(
            [g["tribute_type"][rows] == "memory", g["tribute_type"][rows] == "honor"],
            [cat("In memory of ", g["honoree"][rows]), cat("In honour of ", g["honoree"][rows])],
            default=np.asarray("", dtype=STR),
        )

        def flag(mask: np.ndarray) -> StrArray:
            out: StrArray = np.where(mask, "Y", "").astype(STR)
            return out

        cols = {
            "Reference": ids,
            "Cheque No": to_str(rng.integers(100, 999_999, n)),
            "Deposit Date": us_date,
            "Donor Name": name.astype(STR),
            "Address 1": Gather(a["line1"], app),
            "Address 2": Gather(a["line2"], app),
            "City": Gather(a["city"], app),
            "State/Province": Gather(a["state"], app),
            "Postcode": Gather(a["postal_code"], app),
            "Country": Gather(a["country"], app),
            "Phone": Gather(a["phone"], app),
            "Email": Gather(a["email"], app),
            "Amount": decimal_strings(g["amount_minor"][rows], g["exponent"][rows], thousands=True),
            "Currency": Gather(g["currency"], rows),
            "Fund": Gather(g["designation"], rows),
            "Appeal": Gather(g["campaign"], rows),
            "Tribute": tribute.astype(STR),
            "Do Not Mail": flag(np.strings.find(prefs, "mail.fundraising=opt_out") >= 0),
            "Do Not Call": flag(np.strings.find(prefs, "phone.fundraising=opt_out") >= 0),
            "Email Opt Out": flag(np.strings.find(prefs, "email.newsletter=opt_out") >= 0),
            "Deceased": flag(p["deceased"][person]),
            "Contact Preferences": prefs,
        }
        return SourceTable(
            "csv/bank_cheque_export",
            ids,
            person,
            app,
            rows,
            cols,
            _csv_rows(BANK_HEADER),
            fmt="csv",
            header=BANK_HEADER,
            encoding="cp1252",
            bad_eligible=True,
        )

    def csv_event(self) -> SourceTable:
        """Render the event-ticketing platform export (UTF-8 with BOM, ISO dates)."""
        g, a, rng = self.gifts, self.apps, self.rng
        rows = self._gift_rows(4)
        n = len(rows)
        app = g["appearance"][rows]
        ids = cat(
            "ORD-", np.strings.upper(random_tokens(rng, n, 6, alphabet="base36")), to_str(np.arange(n), 7)
        )
        self._remember("csv/event_platform_export", rows, ids)
        stamp = np.strings.replace(np.strings.slice(iso_ms(g["ts"][rows]), 0, 19), "T", " ")
        prefs = self.prefs[rows]

        def yes_no(key: str) -> StrArray:
            yes = (np.strings.find(prefs, f"{key}=opt_in") >= 0) | (
                np.strings.find(prefs, f"{key}=soft") >= 0
            )
            no = np.strings.find(prefs, f"{key}=opt_out") >= 0
            out: StrArray = np.where(no, "No", np.where(yes, "Yes", "")).astype(STR)
            return out

        dedication = np.where(
            g["tribute_type"][rows] == "",
            "",
            cat(
                np.where(g["tribute_type"][rows] == "memory", "In memory of ", "In honor of "),
                g["honoree"][rows],
            ),
        )
        cols = {
            "Order ID": ids,
            "Attendee ID": cat("A", to_str(np.arange(n) * 7 + 11, 9)),
            "Order Date": stamp,
            "First Name": Gather(a["first_name"], app),
            "Last Name": Gather(a["last_name"], app),
            "Email Address": Gather(a["email"], app),
            "Mobile": Gather(a["phone"], app),
            "Street": Gather(a["line1"], app),
            "Street 2": Gather(a["line2"], app),
            "Town": Gather(a["city"], app),
            "Region": Gather(a["state"], app),
            "Zip": Gather(a["postal_code"], app),
            "Country Code": Gather(a["country"], app),
            "Event Name": Gather(g["campaign"], rows),
            "Ticket Type": choose(
                rng,
                np.array(["General Admission", "VIP", "Donation only", "Table of 8"], dtype=STR),
                n,
                np.array([0.5, 0.15, 0.3, 0.05]),
            ),
            "Donation Amount": decimal_strings(g["amount_minor"][rows], g["exponent"][rows]),
            "Currency": Gather(g["currency"], rows),
            "Marketing Opt-In": yes_no("email.newsletter"),
            "SMS Opt-In": yes_no("sms.fundraising"),
            "Landing Page": Gather(g["landing_url"], rows),
            "Dedication": dedication.astype(STR),
            "Preferences": prefs,
        }
        return SourceTable(
            "csv/event_platform_export",
            ids,
            g["person_idx"][rows],
            app,
            rows,
            cols,
            _csv_rows(EVENT_HEADER),
            fmt="csv",
            header=EVENT_HEADER,
            bad_eligible=True,
        )

    # ---------------------------------------------------------------- Stripe
    def stripe(self, donorbox: SourceTable, classy: SourceTable) -> list[SourceTable]:
        """Render Stripe customers, charges, payment intents, refunds and events."""
        g, a, p, rng = self.gifts, self.apps, self.persons, self.rng
        # Customers: one per Stripe appearance.
        stripe_apps = np.flatnonzero(self.app_source == 0)
        n_cus = len(stripe_apps)
        cus_ids = prefixed_ids(rng, "cus_", n_cus, 14)
        cus_of_app = np.full(len(self.app_source), "", dtype=STR)
        cus_of_app[stripe_apps] = cus_ids
        first_ts = np.full(len(self.app_source), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first_ts, g["appearance"], g["ts"])
        person_of = a["person_idx"][stripe_apps]
        cus_cols = {
            "id": cus_ids,
            "created": first_ts[stripe_apps] - rng.integers(5, 600, n_cus),
            "currency": np.strings.lower(_currency_of(a, stripe_apps)),
            "email": Gather(a["email"], stripe_apps),
            "name": Gather(self.full_name, stripe_apps),
            "phone": Gather(a["phone"], stripe_apps),
            "has_address": _address_ok(a, stripe_apps),
            "line1": Gather(a["line1"], stripe_apps),
            "line2": Gather(a["line2"], stripe_apps),
            "city": Gather(a["city"], stripe_apps),
            "state": Gather(a["state"], stripe_apps),
            "zip": Gather(a["postal_code"], stripe_apps),
            "country": Gather(a["country"], stripe_apps),
            "invoice_prefix": np.strings.upper(random_tokens(rng, n_cus, 8, alphabet="base36")),
            "dnc": Gather(p["do_not_contact"], person_of),
        }
        customers = SourceTable(
            "stripe/customers",
            cus_ids,
            person_of,
            stripe_apps,
            np.full(n_cus, -1, dtype=np.int64),
            cus_cols,
            _customer_rows,
            bad_eligible=True,
        )

        # Charges: Stripe's own gifts plus Donorbox/Classy gifts paid through Stripe (linked).
        rows = np.flatnonzero((g["source"] == 0) | g["linked"])
        n = len(rows)
        app = g["appearance"][rows]
        ch_ids = prefixed_ids(rng, "ch_3", n, 27)
        pi_ids = prefixed_ids(rng, "pi_3", n, 27)
        own = g["source"][rows] == 0
        self._remember("stripe/charges", rows[own], ch_ids[own])
        link_key = np.select(
            [g["source"][rows] == 1, g["source"][rows] == 2],
            [np.asarray("donorbox_donation_id", dtype=STR), np.asarray("classy_transaction_id", dtype=STR)],
            default=np.asarray("", dtype=STR),
        )
        link_value = np.where(own, "", self.gift_record[rows]).astype(STR)
        # Donorbox records the charge id on its donation.
        db_pos = np.searchsorted(donorbox.gift, rows[g["source"][rows] == 1])
        donorbox.columns["stripe_charge_id"] = np.full(len(donorbox), "", dtype=STR)
        donorbox.columns["stripe_charge_id"][db_pos] = ch_ids[g["source"][rows] == 1]
        self.links = {
            "gift": rows[~own],
            "charge": ch_ids[~own],
            "other_source": np.where(
                g["source"][rows[~own]] == 1, "donorbox/donations", "classy/transactions"
            ).astype(STR),
            "other_id": link_value[~own],
        }
        failed = g["failed"][rows]
        fail_kind = rng.integers(0, len(_FAILURES), n)
        refund_minor = g["refund_minor"][rows]
        brand = choose(
            rng,
            np.array(["visa", "mastercard", "amex", "discover"], dtype=STR),
            len(self.app_source),
            np.array([0.55, 0.3, 0.1, 0.05]),
        )
        last4 = to_str(rng.integers(0, 10_000, len(self.app_source)), 4)
        fingerprint = random_tokens(rng, len(self.app_source), 16)
        pm = prefixed_ids(rng, "pm_1", len(self.app_source), 27)
        exp_month = rng.integers(1, 13, len(self.app_source))
        exp_year = rng.integers(2026, 2032, len(self.app_source))
        recurring = g["recurring"][rows]
        campaign = g["campaign"][rows]
        description = np.where(
            recurring,
            "Monthly donation",
            np.where(
                own,
                cat("Donation: ", campaign),
                cat("Donation via ", np.where(g["source"][rows] == 1, "Donorbox", "Classy")),
            ),
        ).astype(STR)
        charge_cols: dict[str, Any] = {
            "id": ch_ids,
            "pi": pi_ids,
            "amount": Gather(g["amount_minor"], rows),
            "refunded": refund_minor,
            "created": g["ts"][rows] - np.where(own, 0, rng.integers(0, 4, n)),
            "currency": np.strings.lower(g["currency"][rows]),
            "customer": cus_of_app[app],
            "description": description,
            "failed": failed,
            "failure": fail_kind,
            "txn": prefixed_ids(rng, "txn_3", n, 27),
            "invoice": np.where(recurring & own, prefixed_ids(rng, "in_1", n, 27), "").astype(STR),
            "recurring": recurring,
            "pm": pm[app],
            "brand": brand[app],
            "last4": last4[app],
            "fingerprint": fingerprint[app],
            "exp_month": exp_month[app],
            "exp_year": exp_year[app],
            "name": Gather(self.full_name, app),
            "email": Gather(a["email"], app),
            "phone": Gather(a["phone"], app),
            "has_address": _address_ok(a, app),
            "line1": Gather(a["line1"], app),
            "line2": Gather(a["line2"], app),
            "city": Gather(a["city"], app),
            "state": Gather(a["state"], app),
            "zip": Gather(a["postal_code"], app),
            "country": Gather(a["country"], app),
            "campaign": campaign,
            "designation": Gather(g["designation"], rows),
            "landing_url": Gather(g["landing_url"], rows),
            "tribute_type": Gather(g["tribute_type"], rows),
            "honoree": Gather(g["honoree"], rows),
            "prefs": np.where(own, self.prefs[rows], "").astype(STR),
            "link_key": link_key,
            "link_value": link_value,
            "risk": rng.integers(0, 65, n),
        }
        charges = SourceTable(
            "stripe/charges",
            ch_ids,
            g["person_idx"][rows],
            app,
            rows,
            charge_cols,
            _charge_rows,
            bad_eligible=True,
        )
        intents = SourceTable(
            "stripe/payment_intents", pi_ids, g["person_idx"][rows], app, rows, charge_cols, _intent_rows
        )
        # Refunds: one per refunded charge.
        ref_pos = np.flatnonzero(refund_minor > 0)
        re_ids = prefixed_ids(rng, "re_3", len(ref_pos), 27)
        refund_cols = {
            "id": re_ids,
            "amount": refund_minor[ref_pos],
            "charge": ch_ids[ref_pos],
            "pi": pi_ids[ref_pos],
            "created": g["refund_ts"][rows[ref_pos]],
            "currency": charge_cols["currency"][ref_pos],
            "txn": prefixed_ids(rng, "txn_3", len(ref_pos), 27),
            "reason": choose(
                rng,
                np.array(["requested_by_customer", "duplicate", ""], dtype=STR),
                len(ref_pos),
                np.array([0.7, 0.2, 0.1]),
            ),
        }
        refunds = SourceTable(
            "stripe/refunds",
            re_ids,
            g["person_idx"][rows[ref_pos]],
            app[ref_pos],
            rows[ref_pos],
            refund_cols,
            _refund_rows,
        )
        # Events: charge.succeeded / charge.failed per charge, charge.refunded per refund.
        ev_charge = np.concatenate([np.arange(n), ref_pos])
        ev_type = np.concatenate(
            [
                np.where(failed, "charge.failed", "charge.succeeded").astype(STR),
                np.full(len(ref_pos), "charge.refunded", dtype=STR),
            ]
        )
        ev_created = np.concatenate([charge_cols["created"], refund_cols["created"]])
        ev_ids = prefixed_ids(rng, "evt_3", len(ev_charge), 28)
        event_cols = {"id": ev_ids, "type": ev_type, "created": ev_created, "charge_row": ev_charge}
        events = SourceTable(
            "stripe/events",
            ev_ids,
            g["person_idx"][rows[ev_charge]],
            app[ev_charge],
            rows[ev_charge],
            event_cols,
            _event_builder(charges),
        )
        return [customers, charges, intents, refunds, events]


def _currency_of(a: Table, apps: IntArray) -> StrArray:
    out: StrArray = lookup(COUNTRY_CURRENCY, a["country"][apps])
    return out


def _address(c: Columns, i: int, zip_key: str = "zip") -> dict[str, Any] | None:
    if not c["has_address"][i]:
        return None
    return {
        "city": c["city"][i] or None,
        "country": c["country"][i],
        "line1": c["line1"][i] or None,
        "line2": c["line2"][i] or None,
        "postal_code": c[zip_key][i] or None,
        "state": c["state"][i] or None,
    }


def _customer_rows(c: Columns, n: int) -> list[Any]:
    out = []
    for i in range(n):
        meta = {"donor_source": "website"}
        if c["dnc"][i]:
            meta["do_not_contact"] = "true"
        out.append(
            {
                "id": c["id"][i],
                "object": "customer",
                "address": _address(c, i),
                "balance": 0,
                "created": c["created"][i],
                "currency": c["currency"][i],
                "default_source": None,
                "delinquent": False,
                "description": None,
                "discount": None,
                "email": c["email"][i] or None,
                "invoice_prefix": c["invoice_prefix"][i],
                "invoice_settings": dict(_INVOICE_FIELDS),
                "livemode": False,
                "metadata": meta,
                "name": c["name"][i] or None,
                "next_invoice_sequence": 1,
                "phone": c["phone"][i] or None,
                "preferred_locales": [],
                "shipping": None,
                "tax_exempt": "none",
                "test_clock": None,
            }
        )
    return out


def _charge_metadata(c: Columns, i: int) -> dict[str, str]:
    meta = {"campaign": c["campaign"][i], "designation": c["designation"][i]}
    if c["landing_url"][i]:
        meta["landing_url"] = c["landing_url"][i]
    if c["tribute_type"][i]:
        meta["tribute_type"] = c["tribute_type"][i]
        meta["tribute_name"] = c["honoree"][i]
    if c["prefs"][i]:
        meta["contact_preferences"] = c["prefs"][i]
    if c["link_key"][i]:
        meta[c["link_key"][i]] = c["link_value"][i]
    return meta


def _charge_rows(c: Columns, n: int) -> list[Any]:
    out = []
    for i in range(n):
        failed = c["failed"][i]
        amount = c["amount"][i]
        refunded = c["refunded"][i]
        code, message = _FAILURES[c["failure"][i]] if failed else (None, None)
        out.append(
            {
                "id": c["id"][i],
                "object": "charge",
                "amount": amount,
                "amount_captured": 0 if failed else amount,
                "amount_refunded": refunded,
                "application": None,
                "application_fee": None,
                "application_fee_amount": None,
                "balance_transaction": None if failed else c["txn"][i],
                "billing_details": {
                    "address": _address(c, i),
                    "email": c["email"][i] or None,
                    "name": c["name"][i] or None,
                    "phone": c["phone"][i] or None,
                },
                "calculated_statement_descriptor": "GIVE EXAMPLE ORG",
                "captured": not failed,
                "created": c["created"][i],
                "currency": c["currency"][i],
                "customer": c["customer"][i] or None,
                "description": c["description"][i],
                "disputed": False,
                "failure_balance_transaction": None,
                "failure_code": code,
                "failure_message": message,
                "fraud_details": {},
                "invoice": c["invoice"][i] or None,
                "livemode": False,
                "metadata": _charge_metadata(c, i),
                "on_behalf_of": None,
                "outcome": {
                    "network_status": "declined_by_network" if failed else "approved_by_network",
                    "reason": "generic_decline" if failed else None,
                    "risk_level": "normal",
                    "risk_score": c["risk"][i],
                    "seller_message": "The bank did not return any further details with this decline."
                    if failed
                    else "Payment complete.",
                    "type": "issuer_declined" if failed else "authorized",
                },
                "paid": not failed,
                "payment_intent": c["pi"][i],
                "payment_method": c["pm"][i],
                "payment_method_details": {
                    "card": {
                        "brand": c["brand"][i],
                        "country": c["country"][i],
                        "exp_month": c["exp_month"][i],
                        "exp_year": c["exp_year"][i],
                        "fingerprint": c["fingerprint"][i],
                        "funding": "credit",
                        "last4": c["last4"][i],
                        "network": c["brand"][i],
                    },
                    "type": "card",
                },
                "receipt_email": c["email"][i] or None,
                "receipt_number": None,
                "receipt_url": f"https://pay.stripe.com/receipts/{c['id'][i]}",
                "refunded": refunded >= amount > 0,
                "review": None,
                "shipping": None,
                "source_transfer": None,
                "statement_descriptor": None,
                "statement_descriptor_suffix": None,
                "status": "failed" if failed else "succeeded",
                "transfer_data": None,
                "transfer_group": None,
            }
        )
    return out


def _intent_rows(c: Columns, n: int) -> list[Any]:
    out = []
    for i in range(n):
        failed = c["failed"][i]
        error = None
        if failed:
            code, message = _FAILURES[c["failure"][i]]
            error = {"charge": c["id"][i], "code": code, "message": message, "type": "card_error"}
        out.append(
            {
                "id": c["pi"][i],
                "object": "payment_intent",
                "amount": c["amount"][i],
                "amount_capturable": 0,
                "amount_received": 0 if failed else c["amount"][i],
                "application": None,
                "application_fee_amount": None,
                "automatic_payment_methods": None,
                "canceled_at": None,
                "cancellation_reason": None,
                "capture_method": "automatic",
                "client_secret": f"{c['pi'][i]}_secret_{c['fingerprint'][i]}",
                "confirmation_method": "automatic",
                "created": c["created"][i],
                "currency": c["currency"][i],
                "customer": c["customer"][i] or None,
                "description": c["description"][i],
                "invoice": c["invoice"][i] or None,
                "last_payment_error": error,
                "latest_charge": c["id"][i],
                "livemode": False,
                "metadata": _charge_metadata(c, i),
                "next_action": None,
                "on_behalf_of": None,
                "payment_method": None if failed else c["pm"][i],
                "payment_method_configuration_details": None,
                "payment_method_options": {
                    "card": {
                        "installments": None,
                        "mandate_options": None,
                        "network": None,
                        "request_three_d_secure": "automatic",
                    }
                },
                "payment_method_types": ["card"],
                "processing": None,
                "receipt_email": c["email"][i] or None,
                "review": None,
                "setup_future_usage": "off_session" if c["recurring"][i] else None,
                "shipping": None,
                "source": None,
                "statement_descriptor": None,
                "statement_descriptor_suffix": None,
                "status": "requires_payment_method" if failed else "succeeded",
                "transfer_data": None,
                "transfer_group": None,
            }
        )
    return out


def _refund_rows(c: Columns, n: int) -> list[Any]:
    return [
        {
            "id": c["id"][i],
            "object": "refund",
            "amount": c["amount"][i],
            "balance_transaction": c["txn"][i],
            "charge": c["charge"][i],
            "created": c["created"][i],
            "currency": c["currency"][i],
            "metadata": {},
            "payment_intent": c["pi"][i],
            "reason": c["reason"][i] or None,
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "succeeded",
            "transfer_reversal": None,
        }
        for i in range(n)
    ]


def _event_builder(charges: SourceTable) -> Any:
    def build(c: Columns, n: int) -> list[Any]:
        rows = np.asarray(c["charge_row"], dtype=np.int64)
        sub = {key: values[rows].tolist() for key, values in charges.columns.items()}
        objs = _charge_rows(sub, n)
        out = []
        for i in range(n):
            obj = objs[i]
            for path, value in charges.overrides.get(int(rows[i]), ()):
                from sandbox.datagen.tables import set_path

                set_path(obj, path, value, ())
            if c["type"][i] != "charge.refunded" and obj["amount_refunded"]:
                obj["amount_refunded"], obj["refunded"] = 0, False
            out.append(
                {
                    "id": c["id"][i],
                    "object": "event",
                    "api_version": STRIPE_API_VERSION,
                    "created": c["created"][i],
                    "data": {"object": obj},
                    "livemode": False,
                    "pending_webhooks": 0,
                    "request": {"id": None, "idempotency_key": None},
                    "type": c["type"][i],
                }
            )
        return out

    return build


def _donorbox_rows(c: Columns, n: int) -> list[Any]:
    out = []
    for i in range(n):
        first, last = c["first"][i], c["last"][i]
        questions = []
        if c["tribute_type"][i]:
            questions.append(
                {
                    "question": "Dedicate this donation",
                    "answer": ("In memory of " if c["tribute_type"][i] == "memory" else "In honor of ")
                    + c["honoree"][i],
                }
            )
        if c["prefs"][i]:
            questions.append({"question": "Contact preferences", "answer": c["prefs"][i]})
        charge = c["stripe_charge_id"][i]
        out.append(
            {
                "id": c["id"][i],
                "campaign": {"id": c["campaign_id"][i], "name": c["campaign"][i]},
                "donor": {
                    "id": c["donor_id"][i],
                    "name": f"{first} {last}".strip(),
                    "first_name": first,
                    "last_name": last,
                    "email": c["email"][i] or None,
                    "phone": c["phone"][i] or None,
                    "address": c["line1"][i] or None,
                    "address_line_2": c["line2"][i] or None,
                    "city": c["city"][i] or None,
                    "state": c["state"][i] or None,
                    "zip_code": c["zip"][i] or None,
                    "country": c["country"][i],
                    "employer": c["employer"][i] or None,
                    "occupation": c["occupation"][i] or None,
                },
                "amount": c["amount"][i],
                "formatted_amount": c["formatted"][i],
                "converted_amount": c["usd"][i],
                "formatted_converted_amount": "$" + c["usd"][i],
                "converted_net_amount": c["usd"][i],
                "recurring": c["recurring"][i],
                "first_recurring_donation": c["first_recurring"][i],
                "amount_refunded": c["refunded"][i],
                "stripe_charge_id": charge or None,
                "paypal_transaction_id": None if charge else c["paypal_id"][i],
                "status": "refunded" if c["is_refunded"][i] else "paid",
                "donation_type": "stripe" if charge else "paypal",
                "donation_date": c["date"][i],
                "anonymous_donation": c["anonymous"][i],
                "gift_aid": c["gift_aid"][i],
                "designation": c["designation"][i],
                "join_mailing_list": c["opt_in"][i],
                "comment": c["comment"][i] or None,
                "donating_company": None,
                "currency": c["currency"][i],
                "converted_currency": "usd",
                "processing_fee": c["fee"][i],
                "questions": questions,
                "plan_id": c["plan_id"][i] if c["plan_id"][i] >= 0 else None,
                "utm_source": c["utm_source"][i] or None,
                "utm_medium": c["utm_medium"][i] or None,
                "utm_campaign": c["utm_campaign"][i] or None,
                "utm_content": c["utm_content"][i] or None,
                "utm_term": None,
                "action": "new",
            }
        )
    return out


def _classy_rows(c: Columns, n: int) -> list[Any]:
    out = []
    for i in range(n):
        gross, fees = c["gross"][i], c["fees"][i]
        first, last = c["first"][i], c["last"][i]
        utm = None
        if c["utm_source"][i]:
            utm = {
                "source": c["utm_source"][i],
                "medium": c["utm_medium"][i],
                "campaign": c["utm_campaign"][i],
                "content": c["utm_content"][i] or None,
                "term": None,
            }
        meta: dict[str, str] = {}
        if c["landing_url"][i]:
            meta["landing_url"] = c["landing_url"][i]
        if c["prefs"][i]:
            meta["contact_preferences"] = c["prefs"][i]
        out.append(
            {
                "id": c["id"][i],
                "status": c["status"][i],
                "total_gross_amount": gross,
                "donation_gross_amount": gross,
                "donation_net_amount": round(gross - fees, 2),
                "fees_amount": fees,
                "fee_on_top": c["fee_on_top"][i],
                "currency_code": c["currency"][i],
                "raw_currency_code": c["currency"][i],
                "raw_total_gross_amount": gross,
                "charged_at": c["charged"][i] or None,
                "purchased_at": c["created"][i],
                "refunded_at": c["refunded_at"][i] or None,
                "created_at": c["created"][i],
                "updated_at": c["updated"][i],
                "member_email_address": c["email"][i] or None,
                "member_name": f"{first} {last}".strip(),
                "member_phone": c["phone"][i] or None,
                "billing_first_name": first,
                "billing_last_name": last,
                "billing_address1": c["line1"][i] or None,
                "billing_address2": c["line2"][i] or None,
                "billing_city": c["city"][i] or None,
                "billing_state": c["state"][i] or None,
                "billing_postal_code": c["zip"][i] or None,
                "billing_country": c["country"][i],
                "supporter_id": c["supporter_id"][i],
                "member_id": None,
                "campaign_id": c["campaign_id"][i],
                "designation_id": c["designation_id"][i],
                "recurring_donation_plan_id": c["plan_id"][i] if c["plan_id"][i] >= 0 else None,
                "frequency": "monthly" if c["recurring"][i] else "one-time",
                "payment_method": "CC" if c["gateway"][i] == "Stripe" else "PayPal",
                "payment_gateway": c["gateway"][i],
                "is_anonymous": c["anonymous"][i],
                "is_gift_aid": c["gift_aid"][i],
                "parent_transaction_id": None,
                "comment": c["comment"][i] or None,
                "dedication": {"type": c["tribute_type"][i], "name": c["honoree"][i]}
                if c["tribute_type"][i]
                else None,
                "utm": utm,
                "metadata": meta,
            }
        )
    return out


def _csv_rows(header: tuple[str, ...]) -> Any:
    def build(c: Columns, n: int) -> list[Any]:
        cols = [c[h] for h in header]
        return [list(row) for row in zip(*cols, strict=True)]

    return build


__all__ = ["SOURCES", "Renderer", "decimal_strings"]


_JS = msgspec.json.encode
_CHARGE = (
    b'{"id":%s,"object":"charge","amount":%d,"amount_captured":%d,"amount_refunded":%d,'
    b'"application":null,"application_fee":null,"application_fee_amount":null,"balance_transaction":%s,'
    b'"billing_details":{"address":%s,"email":%s,"name":%s,"phone":%s},'
    b'"calculated_statement_descriptor":"GIVE EXAMPLE ORG","captured":%s,"created":%d,"currency":%s,'
    b'"customer":%s,"description":%s,"disputed":false,"failure_balance_transaction":null,'
    b'"failure_code":%s,"failure_message":%s,"fraud_details":{},"invoice":%s,"livemode":false,'
    b'"metadata":%s,"on_behalf_of":null,"outcome":%s,"paid":%s,"payment_intent":%s,"payment_method":%s,'
    b'"payment_method_details":{"card":{"brand":%s,"country":%s,"exp_month":%d,"exp_year":%d,'
    b'"fingerprint":%s,"funding":"credit","last4":%s,"network":%s},"type":"card"},'
    b'"receipt_email":%s,"receipt_number":null,"receipt_url":%s,"refunded":%s,"review":null,'
    b'"shipping":null,"source_transfer":null,"statement_descriptor":null,"statement_descriptor_suffix":null,'
    b'"status":%s,"transfer_data":null,"transfer_group":null}'
)
_INTENT = (
    b'{"id":%s,"object":"payment_intent","amount":%d,"amount_capturable":0,"amount_received":%d,'
    b'"application":null,"application_fee_amount":null,"automatic_payment_methods":null,"canceled_at":null,'
    b'"cancellation_reason":null,"capture_method":"automatic","client_secret":%s,'
    b'"confirmation_method":"automatic","created":%d,"currency":%s,"customer":%s,"description":%s,'
    b'"invoice":%s,"last_payment_error":%s,"latest_charge":%s,"livemode":false,"metadata":%s,'
    b'"next_action":null,"on_behalf_of":null,"payment_method":%s,"payment_method_configuration_details":null,'
    b'"payment_method_options":{"card":{"installments":null,"mandate_options":null,"network":null,'
    b'"request_three_d_secure":"automatic"}},"payment_method_types":["card"],"processing":null,'
    b'"receipt_email":%s,"review":null,"setup_future_usage":%s,"shipping":null,"source":null,'
    b'"statement_descriptor":null,"statement_descriptor_suffix":null,"status":%s,"transfer_data":null,'
    b'"transfer_group":null}'
)
_ADDRESS = b'{"city":%s,"country":%s,"line1":%s,"line2":%s,"postal_code":%s,"state":%s}'
_OUTCOME_FAILED = (
    b'{"network_status":"declined_by_network","reason":"generic_decline","risk_level":"normal",'
    b'"risk_score":%d,"seller_message":"The bank did not return any further details with this decline.",'
    b'"type":"issuer_declined"}'
)
_OUTCOME_OK = (
    b'{"network_status":"approved_by_network","reason":null,"risk_level":"normal","risk_score":%d,'
    b'"seller_message":"Payment complete.","type":"authorized"}'
)
_FAILURES_JS = tuple((_JS(code), _JS(message)) for code, message in _FAILURES)


def _js_or_null(values: list[str]) -> list[bytes]:
    return [_JS(v) if v else b"null" for v in values]


def charge_and_intent_lines(c: Columns, n: int) -> tuple[list[bytes], list[bytes]]:
    """Return the JSON text of ``n`` charges and their payment intents, as ``_charge_rows`` and
    ``_intent_rows`` build them (same keys, order and values) but without building dicts.
    """
    js = _JS
    ids = list(map(js, c["id"]))
    pis = list(map(js, c["pi"]))
    emails = _js_or_null(c["email"])
    customers = _js_or_null(c["customer"])
    invoices = _js_or_null(c["invoice"])
    descriptions = list(map(js, c["description"]))
    currencies = list(map(js, c["currency"]))
    pms = list(map(js, c["pm"]))
    charges: list[bytes] = []
    intents: list[bytes] = []
    for i in range(n):
        failed = c["failed"][i]
        amount = c["amount"][i]
        refunded = c["refunded"][i]
        charge_id = c["id"][i]
        meta = [b'{"campaign":', js(c["campaign"][i]), b',"designation":', js(c["designation"][i])]
        if c["landing_url"][i]:
            meta += (b',"landing_url":', js(c["landing_url"][i]))
        if c["tribute_type"][i]:
            meta += (b',"tribute_type":', js(c["tribute_type"][i]), b',"tribute_name":', js(c["honoree"][i]))
        if c["prefs"][i]:
            meta += (b',"contact_preferences":', js(c["prefs"][i]))
        if c["link_key"][i]:
            meta += (b",", js(c["link_key"][i]), b":", js(c["link_value"][i]))
        meta.append(b"}")
        metadata = b"".join(meta)
        if c["has_address"][i]:
            city, line1, line2 = c["city"][i], c["line1"][i], c["line2"][i]
            postal, state = c["zip"][i], c["state"][i]
            address = _ADDRESS % (
                js(city) if city else b"null",
                js(c["country"][i]),
                js(line1) if line1 else b"null",
                js(line2) if line2 else b"null",
                js(postal) if postal else b"null",
                js(state) if state else b"null",
            )
        else:
            address = b"null"
        name, phone = c["name"][i], c["phone"][i]
        if failed:
            code, message = _FAILURES_JS[c["failure"][i]]
            error = b'{"charge":%s,"code":%s,"message":%s,"type":"card_error"}' % (ids[i], code, message)
        else:
            code = message = error = b"null"
        brand = js(c["brand"][i])
        charges.append(
            _CHARGE
            % (
                ids[i],
                amount,
                0 if failed else amount,
                refunded,
                b"null" if failed else js(c["txn"][i]),
                address,
                emails[i],
                js(name) if name else b"null",
                js(phone) if phone else b"null",
                b"false" if failed else b"true",
                c["created"][i],
                currencies[i],
                customers[i],
                descriptions[i],
                code,
                message,
                invoices[i],
                metadata,
                (_OUTCOME_FAILED if failed else _OUTCOME_OK) % c["risk"][i],
                b"false" if failed else b"true",
                pis[i],
                pms[i],
                brand,
                js(c["country"][i]),
                c["exp_month"][i],
                c["exp_year"][i],
                js(c["fingerprint"][i]),
                js(c["last4"][i]),
                brand,
                emails[i],
                js(f"https://pay.stripe.com/receipts/{charge_id}"),
                b"true" if refunded >= amount > 0 else b"false",
                b'"failed"' if failed else b'"succeeded"',
            )
        )
        intents.append(
            _INTENT
            % (
                pis[i],
                amount,
                0 if failed else amount,
                js(f"{c['pi'][i]}_secret_{c['fingerprint'][i]}"),
                c["created"][i],
                currencies[i],
                customers[i],
                descriptions[i],
                invoices[i],
                error,
                ids[i],
                metadata,
                b"null" if failed else pms[i],
                emails[i],
                b'"off_session"' if c["recurring"][i] else b"null",
                b'"requires_payment_method"' if failed else b'"succeeded"',
            )
        )
    return charges, intents
