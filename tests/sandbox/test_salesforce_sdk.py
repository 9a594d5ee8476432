"""simple-salesforce itself works against the emulator: JWT login, sObject upsert, query_all, bulk2."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceMalformedRequest

from sandbox.common.faults import FaultRule
from sandbox.common.runner import Running, Sandbox
from sandbox.common.tls import TlsFiles
from sandbox.emulators.salesforce import SalesforceEmulator

CLIENT_ID = "donor-sync-consumer-key"
USER = "integration@donor-sync.test"


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def box(start_emulators: Callable[..., Sandbox], private_key: rsa.RSAPrivateKey) -> Sandbox:
    public = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return start_emulators(SalesforceEmulator({"jwt_public_key": public.decode()}))


@pytest.fixture
def running(box: Sandbox) -> Iterator[Running]:
    emulator = box["salesforce"].emulator
    saved = dict(emulator.settings)
    emulator.reset()
    yield box["salesforce"]
    emulator.settings.clear()
    emulator.settings.update(saved)
    emulator.reset()


@pytest.fixture
def session(sandbox_tls: TlsFiles) -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.verify = str(sandbox_tls.ca_cert)
        s.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise override `verify`
        yield s


def _jwt_login(running: Running, session: requests.Session, key: rsa.RSAPrivateKey) -> dict[str, str]:
    """Run the JWT bearer flow against the emulator's token endpoint."""
    claims = {
        "iss": CLIENT_ID,
        "sub": USER,
        "aud": "https://login.salesforce.com",
        "exp": int(time.time()) + 180,
    }
    response = session.post(
        f"{running.base_url}/services/oauth2/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": jwt.encode(claims, key, "RS256"),
        },
        timeout=5,
    )
    response.raise_for_status()
    return dict(response.json())


@pytest.fixture
def sf(running: Running, session: requests.Session, private_key: rsa.RSAPrivateKey) -> Salesforce:
    token = _jwt_login(running, session, private_key)
    return Salesforce(instance_url=token["instance_url"], session_id=token["access_token"], session=session)


def test_sobject_upsert_by_external_id(sf: Salesforce, running: Running) -> None:
    contacts = sf.Contact
    assert (
        contacts.upsert("Donor_Sync_Id__c/D-1", {"LastName": "Lovelace", "Email": "ada@example.org"}) == 201
    )
    assert contacts.upsert("Donor_Sync_Id__c/D-1", {"FirstName": "Ada"}) == 200
    household = sf.Account.upsert("Donor_Sync_Id__c/H-1", {"Name": "Lovelace Household"}, raw_response=True)
    assert household.json()["created"] is True
    usage = contacts.api_usage["api-usage"]
    assert (usage.used, usage.total) == (2, 100000), "simple-salesforce parses Sforce-Limit-Info"
    record = sf.Contact.get_by_custom_id("Donor_Sync_Id__c", "D-1")
    assert (record["FirstName"], record["LastName"]) == ("Ada", "Lovelace")
    with pytest.raises(SalesforceMalformedRequest) as error:
        sf.Contact.upsert("Donor_Sync_Id__c/D-2", {"Email": "x@example.org"})
    assert error.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"


def test_query_all_follows_next_records_url(sf: Salesforce, running: Running) -> None:
    running.emulator.settings["query_batch_size"] = 3
    for i in range(7):
        sf.Contact.upsert(f"Donor_Sync_Id__c/D-{i}", {"LastName": f"N{i}"})
    result = sf.query_all("SELECT Donor_Sync_Id__c, LastName FROM Contact ORDER BY LastName DESC")
    assert result["totalSize"] == 7
    assert result["done"] is True
    assert [r["LastName"] for r in result["records"]] == [f"N{i}" for i in reversed(range(7))]
    first = sf.query("SELECT LastName FROM Contact")
    assert len(first["records"]) == 3, "query_all had to follow nextRecordsUrl twice"
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/")


def test_bulk2_upsert_reports_successes_and_failures(sf: Salesforce, running: Running) -> None:
    sf.Contact.upsert("Donor_Sync_Id__c/D-2", {"LastName": "Existing"})
    records = [
        {"Donor_Sync_Id__c": "D-1", "LastName": "Lovelace", "Email": "ada@example.org"},
        {"Donor_Sync_Id__c": "D-2", "LastName": "Hopper", "Email": "grace@example.org"},
        {"Donor_Sync_Id__c": "D-3", "LastName": "Turing", "Email": "broken"},
    ]
    [result] = sf.bulk2.Contact.upsert(records=records, external_id_field="Donor_Sync_Id__c", wait=0.05)  # type: ignore[arg-type]
    assert (
        result["numberRecordsProcessed"],
        result["numberRecordsFailed"],
        result["numberRecordsTotal"],
    ) == (3, 1, 3)
    job = result["job_id"]
    header = sf.bulk2.Contact.get_successful_records(job).splitlines()[0].split(",")
    assert header[:2] == ["sf__Id", "sf__Created"]
    assert sorted(header[2:]) == ["Donor_Sync_Id__c", "Email", "LastName"]
    all_records = sf.bulk2.Contact.get_all_ingest_records(job)
    assert sorted((r["Donor_Sync_Id__c"], r["sf__Created"]) for r in all_records["successfulRecords"]) == [
        ("D-1", "true"),
        ("D-2", "false"),
    ]
    assert all_records["failedRecords"][0]["sf__Error"].startswith("INVALID_EMAIL_ADDRESS")
    assert all_records["unprocessedRecords"] == []
    names = {r["LastName"] for r in sf.query_all("SELECT LastName FROM Contact")["records"]}
    assert names == {"Lovelace", "Hopper"}


def test_bulk2_insert_of_opportunities_in_several_jobs(sf: Salesforce, running: Running) -> None:
    gifts = [
        {"Name": f"Gift {i}", "Amount": str(10 + i), "CloseDate": "2024-05-01", "StageName": "Closed Won"}
        for i in range(5)
    ]
    results = sf.bulk2.Opportunity.insert(records=gifts, batch_size=2, wait=0.05)  # type: ignore[arg-type]
    assert [r["numberRecordsProcessed"] for r in results] == [2, 2, 1]
    total = sf.query("SELECT Id FROM Opportunity WHERE StageName = 'Closed Won' AND Amount > 11")["totalSize"]
    assert total == 3


def test_expired_session_surfaces_as_the_sdk_exception(sf: Salesforce, running: Running) -> None:
    running.emulator.faults.set([FaultRule(kind="expired_token", count=1)])
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Contact")
    assert sf.query("SELECT Id FROM Contact")["totalSize"] == 0


def test_limits_and_describe_through_the_sdk(sf: Salesforce) -> None:
    assert sf.limits()["DailyApiRequests"]["Max"] == 100000
    stages = [
        p["value"]
        for f in sf.Opportunity.describe()["fields"]
        if f["name"] == "StageName"
        for p in f["picklistValues"]
    ]
    assert "Closed Won" in stages
