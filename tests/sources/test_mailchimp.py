import json
from urllib.parse import urlencode

import pytest

from chalicelib.errors import BadRequest, Unauthorized, ValidationFailed
from chalicelib.events import EMAIL_BOUNCE, IDENTIFY, SPAM_REPORT, UNSUBSCRIBE
from chalicelib.sources.mailchimp import MailchimpSource
from chalicelib.sources.payload import parse_form
from chalicelib.state import lead_id_for

from .support import NOW, payload, request

KEY = "mailchimp-url-key-for-tests"
URL = f"https://api.baton.example/v1/webhooks/mailchimp?key={KEY}"
source = MailchimpSource()


def form(name: str, **changes: str) -> bytes:
    raw = payload("mailchimp", name)
    return raw if not changes else raw + b"&" + urlencode(changes).encode()


def post(body: bytes, key: str | None = KEY):
    return request(
        body,
        {"Content-Type": "application/x-www-form-urlencoded"},
        url=URL,
        query={} if key is None else {"key": key},
    )


# ------------------------------------------------------------------ verify


def test_right_key_passes():
    source.verify(post(form("subscribe_docs_sample.txt")), KEY, NOW)


def test_wrong_key_fails():
    with pytest.raises(Unauthorized, match="bad key query parameter"):
        source.verify(post(b"", key="guess"), KEY, NOW)


def test_missing_key_fails():
    with pytest.raises(Unauthorized, match="missing key query parameter"):
        source.verify(post(b"", key=None), KEY, NOW)


def test_get_validation_is_verified_and_answers_200_without_events():
    get = request(b"", method="GET", url=URL, query={"key": KEY})
    source.verify(get, KEY, NOW)
    result = source.parse(get, {})
    assert result.status == 200 and result.events == []
    with pytest.raises(Unauthorized):
        source.verify(request(b"", method="GET", url=URL, query={"key": "nope"}), KEY, NOW)


# ------------------------------------------------------------------ parse


def test_nested_keys_become_dicts():
    parsed = parse_form(
        b"type=x&data%5Bmerges%5D%5BFNAME%5D=Ada&data%5Bemail%5D=a%40b.co&data%5Bmerges%5D%5BLNAME%5D=L"
    )
    assert parsed == {"type": "x", "data": {"email": "a@b.co", "merges": {"FNAME": "Ada", "LNAME": "L"}}}


def test_conflicting_keys_are_refused():
    with pytest.raises(ValidationFailed) as err:
        parse_form(b"data=1&data%5Bemail%5D=a%40b.co")
    assert err.value.field == "data[email]"


def test_subscribe_is_an_identify_with_merge_traits():
    [event] = source.parse(post(form("subscribe_docs_sample.txt")), {}).events
    assert event.type == IDENTIFY
    assert event.email == "api@mailchimp.com"
    assert event.ts == 1238103357.0  # 2009-03-26 21:35:57 taken as UTC
    assert event.traits == {
        "email": "api@mailchimp.com",
        "first_name": "Mailchimp",
        "last_name": "API",
        "INTERESTS": "Group1,Group2",
    }
    assert event.properties == {"mailchimp_type": "subscribe", "list_id": "a6b5da1054"}
    assert event.event_id.startswith("mailchimp:h_")


def test_profile_is_an_identify():
    [event] = source.parse(post(form("profile_docs_sample.txt")), {}).events
    assert event.type == IDENTIFY and event.traits["first_name"] == "Mailchimp"


def test_lead_merge_fields_and_field_map():
    settings = {"field_map": {"MMERGE6": "lead_source"}}
    [event] = source.parse(post(form("subscribe_lead_with_merge_fields.txt")), settings).events
    assert event.email == "hedy.lamarr@spread-spectrum.example"
    assert event.traits["company"] == "Spread Spectrum Co"
    assert event.traits["phone"] == "+1 310 555 0188"
    assert event.traits["lead_source"] == "Webinar: Frequency hopping"
    assert event.traits["ADDRESS"] == {"addr1": "1 Sunset Blvd", "city": "Los Angeles", "country": "US"}
    assert event.traits["GROUPINGS"] == {"0": {"id": "1", "groups": "Newsletter"}}


def test_field_map_to_a_custom_attribute_named_as_rules_read_it():
    settings = {"field_map": {"MMERGE6": "custom.signup_source"}}
    [event] = source.parse(post(form("subscribe_lead_with_merge_fields.txt")), settings).events
    assert event.traits["signup_source"] == "Webinar: Frequency hopping"
    assert "custom.signup_source" not in event.traits and "MMERGE6" not in event.traits


def test_upemail_identifies_the_new_address():
    [event] = source.parse(post(form("upemail_docs_sample.txt")), {}).events
    assert event.type == IDENTIFY
    assert event.email == "api+new@mailchimp.com"
    assert event.traits == {"email": "api+new@mailchimp.com"}
    assert event.properties["previous_lead_id"] == lead_id_for("api+old@mailchimp.com")
    assert "api+old" not in json.dumps(event.to_dict())  # erasing the old lead leaves no copy here


def test_unsubscribe():
    [event] = source.parse(post(form("unsubscribe_docs_sample.txt")), {}).events
    assert event.type == UNSUBSCRIBE
    assert event.email == "api+unsub@mailchimp.com"
    assert event.properties == {
        "mailchimp_type": "unsubscribe",
        "list_id": "a6b5da1054",
        "campaign_id": "cb398d21d2",
        "reason": "manual",
        "action": "unsub",
    }


def test_cleaned_hard_is_a_bounce_and_abuse_a_spam_report():
    [event] = source.parse(post(form("cleaned_docs_sample.txt")), {}).events
    assert event.type == EMAIL_BOUNCE and event.email == "api+cleaned@mailchimp.com"
    raw = payload("mailchimp", "cleaned_docs_sample.txt").replace(b"reason%5D=hard", b"reason%5D=abuse")
    [event] = source.parse(post(raw), {}).events
    assert event.type == SPAM_REPORT


def test_campaign_is_ignored():
    result = source.parse(post(form("campaign_docs_sample.txt")), {})
    assert result.events == [] and result.body == {"ok": True, "ignored": 1}


def test_same_delivery_same_id_different_delivery_different_id():
    body = form("subscribe_docs_sample.txt")
    first = source.parse(post(body), {}).events[0]
    again = source.parse(post(body), {}).events[0]
    later = source.parse(post(body.replace(b"21%3A35%3A57", b"21%3A35%3A58")), {}).events[0]
    assert first.event_id == again.event_id != later.event_id


@pytest.mark.parametrize(
    "body, field",
    [
        (b"fired_at=2009-03-26+21%3A35%3A57&data%5Bemail%5D=a%40b.co", "type"),
        (b"type=subscribe&data%5Bemail%5D=a%40b.co", "fired_at"),
        (b"type=subscribe&fired_at=2009-03-26T21%3A35%3A57Z&data%5Bemail%5D=a%40b.co", "fired_at"),
        (b"type=subscribe&fired_at=2009-02-30+21%3A35%3A57&data%5Bemail%5D=a%40b.co", "fired_at"),
        (b"type=subscribe&fired_at=2009-03-26+21%3A35%3A57", "data"),
        (b"type=subscribe&fired_at=2009-03-26+21%3A35%3A57&data=x", "data"),
        (b"type=subscribe&fired_at=2009-03-26+21%3A35%3A57&data%5Bid%5D=1", "data.email"),
        (b"type=upemail&fired_at=2009-03-26+21%3A35%3A57&data%5Bnew_email%5D=a%40b.co", "data.old_email"),
        (b"type=cleaned&fired_at=2009-03-26+21%3A35%3A57&data%5Bemail%5D=broken", "data.email"),
        (
            b"type=subscribe&fired_at=2009-03-26+21%3A35%3A57&data%5Bemail%5D=a%40b.co&data%5Bmerges%5D=x",
            "data.merges",
        ),
    ],
)
def test_wrong_shapes_name_the_path(body, field):
    with pytest.raises(ValidationFailed) as err:
        source.parse(post(body), {})
    assert err.value.field == field


def test_undecodable_body_is_bad_request():
    with pytest.raises(BadRequest):
        source.parse(post(b"type=\xff\xfe"), {})


def test_too_deep_keys_are_refused():
    with pytest.raises(ValidationFailed):
        source.parse(post(b"data" + b"%5Ba%5D" * 50 + b"=1"), {})
