"""The official `openai` package, pointed at sluice's OpenAI-compatible API."""

from openai import OpenAI

PROMPT = [{"role": "user", "content": "Tell me about the sea"}]


def client(sluice, token) -> OpenAI:
    return OpenAI(base_url=f"{sluice.url}/v1", api_key=token, max_retries=0, timeout=30)


def test_a_streamed_completion_arrives_whole(sluice, token):
    openai = client(sluice, token)
    parts = []
    for chunk in openai.chat.completions.create(model="mock-1", messages=PROMPT, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    assert len(parts) > 1, "streamed in several chunks"

    whole = openai.chat.completions.create(model="mock-1", messages=PROMPT)
    assert "".join(parts) == whole.choices[0].message.content


def test_models_are_listed(sluice, token):
    ids = [model.id for model in client(sluice, token).models.list()]
    assert "mock-1" in ids


def test_a_bad_token_is_refused(sluice):
    import openai

    try:
        client(sluice, "not-a-jwt").models.list()
    except openai.AuthenticationError as err:
        assert err.status_code == 401
    else:
        raise AssertionError("expected 401")
