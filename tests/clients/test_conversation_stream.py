"""A standard Python SSE client (httpx-sse) reading the conversation message stream."""

import json

import httpx
from httpx_sse import connect_sse


def events_of(client, method, url, **kwargs):
    with connect_sse(client, method, url, **kwargs) as source:
        return list(source.iter_sse())


def check_answer(events):
    tokens = [json.loads(e.data)["content"] for e in events if e.event == "token"]
    assert len(tokens) > 1, "token by token"
    complete = events[-1]
    assert complete.event == "complete", events
    body = json.loads(complete.data)
    assert body["content"] == "".join(tokens)
    return body


def test_post_streams_tokens_then_complete(sluice, token, conversation):
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=sluice.url, headers=headers, timeout=30) as client:
        events = events_of(
            client,
            "POST",
            f"/api/conversations/{conversation}/messages",
            json={"content": "Where is the ship?"},
        )
        answer = check_answer(events)
        listed = client.get(f"/api/conversations/{conversation}/messages").json()
    assert listed[-2]["role"] == "user" and listed[-2]["content"] == "Where is the ship?"
    assert listed[-1]["id"] == answer["message_id"]
    assert listed[-1]["status"] == "completed"


def test_the_eventsource_route_streams_the_same_way(sluice, token, conversation):
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=sluice.url, headers=headers, timeout=30) as client:
        events = events_of(
            client,
            "GET",
            f"/api/conversations/{conversation}/messages-stream",
            params={"content": "And then?"},
        )
    check_answer(events)


def test_errors_before_the_stream_are_problem_json(sluice, conversation):
    stranger = sluice.token("someone-else")
    response = httpx.post(
        f"{sluice.url}/api/conversations/{conversation}/messages",
        headers={"Authorization": f"Bearer {stranger}"},
        json={"content": "hi"},
        timeout=30,
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"
