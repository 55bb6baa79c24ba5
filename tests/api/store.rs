//! The store on both back ends: owner scoping, pagination, and the generation state machine.

use sluice::ids::{ScenarioId, UserId};
use sluice::store::{
    ConversationStatus, MessageRole, MessageStatus, NewMessage, Page, ProgressUpdate, Scenario,
    Store, TerminalOutcome, TurnStart,
};

use crate::helpers::{Db, fresh_database};

async fn store(db: Db) -> Store {
    let store = Store::connect(&fresh_database(db).await).await.unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap(); // idempotent
    store
}

fn scenario(owner: &UserId, n: i64) -> Scenario {
    Scenario {
        id: ScenarioId::new(),
        owner: owner.clone(),
        novel_id: "moby-dick".into(),
        description: format!("scenario {n}"),
        passage_ids: vec!["p-1".into(), "p-2".into()],
        passages_source: "ai".into(),
        created_at: 1_000 + n,
    }
}

async fn scenarios_are_owner_scoped_and_paginated(db: Db) {
    let store = store(db).await;
    let alice = UserId::new("alice");
    let bob = UserId::new("bob");
    let mut ids = Vec::new();
    for n in 0..5 {
        let s = scenario(&alice, n);
        store.insert_scenario(&s).await.unwrap();
        ids.push(s.id);
    }
    store.insert_scenario(&scenario(&bob, 9)).await.unwrap();

    let got = store.scenario(&alice, ids[0]).await.unwrap().unwrap();
    assert_eq!(got.passage_ids, vec!["p-1", "p-2"]);
    assert!(
        store.scenario(&bob, ids[0]).await.unwrap().is_none(),
        "bob cannot see alice's"
    );

    let first = store
        .scenarios(
            &alice,
            Page {
                limit: 2,
                before: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        first.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![ids[4], ids[3]]
    );
    let second = store
        .scenarios(
            &alice,
            Page {
                limit: 2,
                before: Some(ids[3]),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        second.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![ids[2], ids[1]]
    );
    // A cursor from another user yields nothing rather than leaking order.
    let foreign = store
        .scenarios(
            &bob,
            Page {
                limit: 10,
                before: Some(ids[3]),
            },
        )
        .await
        .unwrap();
    assert!(foreign.is_empty());
}

async fn generation_state_machine(db: Db) {
    let store = store(db).await;
    let alice = UserId::new("alice");
    let s = scenario(&alice, 1);
    store.insert_scenario(&s).await.unwrap();
    let conv = store.insert_conversation(&alice, s.id).await.unwrap();
    assert_eq!(conv.status, ConversationStatus::Pending);
    assert!(
        store
            .conversation(&UserId::new("bob"), conv.id)
            .await
            .unwrap()
            .is_none()
    );

    let p = |progress, msg: &str| ProgressUpdate {
        progress,
        message: Some(msg.into()),
    };
    let after_50 = store
        .record_progress(conv.id, &p(50, "half"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after_50.status, ConversationStatus::Generating);
    assert_eq!(after_50.progress, 50);
    assert_eq!(after_50.event_seq, 1);
    assert!(
        store
            .record_progress(conv.id, &p(20, "late"))
            .await
            .unwrap()
            .is_none(),
        "progress never goes backwards"
    );
    let messages = vec![
        NewMessage {
            role: MessageRole::Assistant,
            content: "Call me Ishmael.".into(),
            status: MessageStatus::Completed,
        },
        NewMessage {
            role: MessageRole::User,
            content: "Go on.".into(),
            status: MessageStatus::Completed,
        },
    ];
    let done = store
        .complete_conversation(conv.id, &messages)
        .await
        .unwrap()
        .unwrap();
    let TerminalOutcome::Applied(done) = done else {
        panic!("first completion applies")
    };
    assert_eq!(done.status, ConversationStatus::Completed);
    assert_eq!(done.progress, 100);
    assert_eq!(done.event_seq, 2);
    // Completion is idempotent: a second report changes nothing and stores no duplicates.
    let again = store
        .complete_conversation(conv.id, &messages)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(again, TerminalOutcome::AlreadyTerminal(c) if c.event_seq == 2));
    assert!(matches!(
        store.fail_conversation(conv.id, "late failure").await.unwrap().unwrap(),
        TerminalOutcome::AlreadyTerminal(c) if c.status == ConversationStatus::Completed
    ));
    assert!(
        store
            .record_progress(conv.id, &p(99, "zombie"))
            .await
            .unwrap()
            .is_none()
    );
    let stored = store.messages(&alice, conv.id).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].content, "Call me Ishmael.");
    assert!(
        store
            .messages(&UserId::new("bob"), conv.id)
            .await
            .unwrap()
            .is_empty()
    );

    // Chat turns: the user message is stored only for the owner's completed conversation, and
    // only finished messages count as history, oldest first, capped.
    let hi = NewMessage {
        role: MessageRole::User,
        content: "hi".into(),
        status: MessageStatus::Completed,
    };
    assert!(matches!(
        store
            .open_turn(&UserId::new("bob"), conv.id, 10, &hi)
            .await
            .unwrap(),
        TurnStart::NotFound
    ));
    let pending = store.insert_conversation(&alice, s.id).await.unwrap();
    assert!(matches!(
        store.open_turn(&alice, pending.id, 10, &hi).await.unwrap(),
        TurnStart::NotReady(ConversationStatus::Pending)
    ));
    assert!(store.messages(&alice, pending.id).await.unwrap().is_empty());
    assert_eq!(store.messages(&alice, conv.id).await.unwrap().len(), 2);
    let TurnStart::Opened {
        history,
        user_message: user_msg,
    } = store.open_turn(&alice, conv.id, 10, &hi).await.unwrap()
    else {
        panic!("turn not opened")
    };
    assert_eq!(
        history
            .iter()
            .map(|m| (m.role, m.content.as_str()))
            .collect::<Vec<_>>(),
        stored
            .iter()
            .map(|m| (m.role, m.content.as_str()))
            .collect::<Vec<_>>(),
        "history is what preceded the turn, oldest first"
    );
    assert_eq!(
        store
            .messages(&alice, conv.id)
            .await
            .unwrap()
            .last()
            .unwrap()
            .id,
        user_msg.id
    );
    let reply = store
        .insert_message(
            &alice,
            conv.id,
            &NewMessage {
                role: MessageRole::Assistant,
                content: String::new(),
                status: MessageStatus::Streaming,
            },
        )
        .await
        .unwrap();
    let TurnStart::Opened { history, .. } = store.open_turn(&alice, conv.id, 2, &hi).await.unwrap()
    else {
        panic!("turn not opened")
    };
    assert_eq!(history.len(), 2, "capped at the limit");
    assert_eq!(
        (
            history.last().unwrap().role,
            history.last().unwrap().content.as_str()
        ),
        (user_msg.role, user_msg.content.as_str()),
        "streaming message not in history"
    );
    store
        .finish_message(reply.id, "hello there", MessageStatus::Interrupted)
        .await
        .unwrap();
    let all = store.messages(&alice, conv.id).await.unwrap();
    let finished = all.iter().find(|m| m.id == reply.id).unwrap();
    assert_eq!(
        (finished.content.as_str(), finished.status),
        ("hello there", MessageStatus::Interrupted)
    );

    // A failed conversation stays failed.
    let other = store.insert_conversation(&alice, s.id).await.unwrap();
    assert!(matches!(
        store.fail_conversation(other.id, "boom").await.unwrap().unwrap(),
        TerminalOutcome::Applied(c) if c.status == ConversationStatus::Failed && c.error.as_deref() == Some("boom")
    ));
    assert!(matches!(
        store.complete_conversation(other.id, &messages).await.unwrap().unwrap(),
        TerminalOutcome::AlreadyTerminal(c) if c.status == ConversationStatus::Failed
    ));
    assert!(store.messages(&alice, other.id).await.unwrap().is_empty());
}

async fn novel_passages_fallback(db: Db) {
    let store = store(db).await;
    assert!(store.novel_passages("n1").await.unwrap().is_none());
    store
        .save_novel_passages("n1", &["a".into()])
        .await
        .unwrap();
    store
        .save_novel_passages("n1", &["b".into(), "c".into()])
        .await
        .unwrap();
    assert_eq!(
        store.novel_passages("n1").await.unwrap().unwrap(),
        vec!["b", "c"]
    );
}

#[tokio::test]
async fn sqlite_scenarios() {
    scenarios_are_owner_scoped_and_paginated(Db::Sqlite).await;
}

#[tokio::test]
async fn postgres_scenarios() {
    scenarios_are_owner_scoped_and_paginated(Db::Postgres).await;
}

#[tokio::test]
async fn sqlite_generation_state_machine() {
    generation_state_machine(Db::Sqlite).await;
}

#[tokio::test]
async fn postgres_generation_state_machine() {
    generation_state_machine(Db::Postgres).await;
}

#[tokio::test]
async fn sqlite_novel_passages() {
    novel_passages_fallback(Db::Sqlite).await;
}

#[tokio::test]
async fn postgres_novel_passages() {
    novel_passages_fallback(Db::Postgres).await;
}
