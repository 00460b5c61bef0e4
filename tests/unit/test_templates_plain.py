"""Plain ``{{ name }}`` templates take a shortcut that must render exactly as jinja does."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsrelay.errors import TemplateError
from smsrelay.templates import _plain, compile_template, render

VARS = {"name": "Ann", "code": 42, "none_value": None, "amount": 3.5, "true_": True}

CASES = [
    "Hi {{ name }}, your code is {{ code }}. Reply STOP to opt out.",
    "{{name}}{{code}}",
    "{{ none_value }} {{ amount }} {{ true_ }}",
    "Hi {{ name }}\n",  # jinja drops the trailing newline: not a shortcut
    "a\r\nb {{ name }}",  # jinja normalises newlines: not a shortcut
    "{{ true }} {{ none }} {{ range }}",  # literals and globals: not a shortcut
    "{{  name  }} {{- name }} {{ name|upper }} {{ name.upper() }}",
    "{% if name %}{{ name }}{% endif %}",
    "}} {{ name }} }",
]


@pytest.mark.parametrize("source", CASES)
def test_shortcut_renders_like_jinja(source):
    assert render(source, VARS) == compile_template(source).render(**VARS)


def test_only_plain_templates_take_the_shortcut():
    assert _plain(CASES[0]) is not None and _plain(CASES[1]) is not None
    assert all(_plain(s) is None for s in CASES[3:8])


def test_a_missing_variable_names_it_and_the_recipient_either_way():
    for source in ("Hi {{ first_name }}", "Hi {{ first_name|upper }}"):
        with pytest.raises(TemplateError) as info:
            render(source, {}, recipient="+61491570156")
        assert str(info.value).startswith(
            "template variable missing: 'first_name' is undefined for recipient +61491570156"
        )


@given(
    st.lists(
        st.one_of(st.text(alphabet="ab {}\n%#", max_size=6), st.sampled_from(["{{ name }}", "{{code}}"])), max_size=6
    )
)
def test_any_mix_of_text_and_holes_renders_like_jinja(pieces):
    source = "".join(pieces)
    try:
        expected = compile_template(source).render(**VARS)
    except Exception:
        return  # jinja refuses it; the shortcut never sees a template that fails to compile
    assert render(source, VARS) == (source if "{" not in source else expected)
