"""What a rendered SMS looks like, and what a failing template tells the user."""

from __future__ import annotations

import pytest

from smsrelay.errors import TemplateError
from smsrelay.templates import render

TO = "+61491570156"


@pytest.mark.parametrize(
    ("source", "variables", "text"),
    [
        # An SMS is plain text: nothing is HTML-escaped.
        ("{{ name|upper }} & co", {"name": "a&b <x>"}, "A&B <X> & co"),
        ("{{ name }}", {"name": "a&b <x>"}, "a&b <x>"),
        # jinja drops one trailing newline, which would otherwise cost a character.
        ("Hi {{ name|upper }}\n", {"name": "ann"}, "Hi ANN"),
        ("Hi {{ name }}\n", {"name": "ann"}, "Hi ann"),
        # Literals win over variables of the same name.
        ("{{ true }} {{ none }}", {"true": "t", "none": "n"}, "True None"),
        # A variable named "self" that the template does not use is no problem.
        ("{{ name|upper }}", {"name": "ann", "self": "v"}, "ANN"),
        ("no holes {", {}, "no holes {"),
    ],
)
def test_renders_plain_sms_text(source, variables, text):
    assert render(source, variables) == text


@pytest.mark.parametrize("source", ["{{ self }}", "Hi {{ self|upper }}"])
def test_a_variable_named_self_is_a_template_error_naming_it(source):
    # jinja binds self to the template: the value could never show, and render(self=…) clashed.
    with pytest.raises(TemplateError) as info:
        render(source, {"self": "v"}, recipient=TO)
    assert (
        str(info.value)
        == f"template variable 'self' for recipient {TO} is jinja's name for the template: rename the variable"
    )
    assert (info.value.field, info.value.recipient) == ("message", TO)


@pytest.mark.parametrize("source", ["Hi {{ first_name }}", "Hi {{ first_name|upper }}"])
def test_a_missing_variable_says_where_with_or_without_a_recipient(source):
    with pytest.raises(TemplateError) as info:
        render(source, {}, recipient=TO)
    assert str(info.value) == f"template variable missing: 'first_name' is undefined for recipient {TO}"
    assert (info.value.field, info.value.recipient) == ("message", TO)
    with pytest.raises(TemplateError) as info:
        render(source, {})
    assert str(info.value) == "template variable missing: 'first_name' is undefined"
    assert (info.value.field, info.value.recipient) == ("message", None)


def test_a_refused_template_says_so_for_the_recipient():
    source = "{{ name.__class__ }}"
    with pytest.raises(TemplateError) as info:
        render(source, {"name": "x"}, recipient=TO)
    assert str(info.value).startswith(f"the message template failed for recipient {TO}: ")
    assert "__class__" in str(info.value)
    assert (info.value.field, info.value.recipient) == ("message", TO)
    with pytest.raises(TemplateError) as info:
        render(source, {"name": "x"})
    assert str(info.value).startswith("the message template failed: ")
    assert (info.value.field, info.value.recipient) == ("message", None)
