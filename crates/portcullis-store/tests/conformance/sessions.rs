//! Sessions and known devices.

use portcullis_core::ports::{
    AccountReads, Claims, Counter, DeviceReads, NewSession, SessionReads, Transactions,
};
use portcullis_testkit::{both, Backend};

use crate::support::{account, commit, seed_record, store, T};

async fn sessions(backend: Backend) {
    let (s, _db) = store(backend).await;
    let id = account(&s, "alice1", "378282246310005").await;
    let new = |h: u8| NewSession {
        token_hash: [h; 32],
        account_id: id,
        user_agent: Some("Test".into()),
        client_ip: Some("127.0.0.1".into()),
        amr: "pwd otp mfa".into(),
    };
    let mut w = s.begin(T);
    let a = w.create_session(new(1)).await.unwrap();
    commit(w).await;
    let mut w = s.begin(T.plus_secs(1));
    let b = w.create_session(new(2)).await.unwrap();
    commit(w).await;
    let found = s.session_by_token(&[1; 32]).await.unwrap().unwrap();
    assert_eq!((found.id, found.account_id, found.created_at), (a, id, T));
    assert_eq!(found.user_agent.as_deref(), Some("Test"));
    assert_eq!(found.reauth_at, None);
    assert_eq!(found.amr, "pwd otp mfa");
    // The session, its account and the account's cards in one read (`GET /api/v1/me`): the
    // same as the two reads give, with every card once, in the order they were linked.
    let second = seed_record(&s, "5555555555554444").await;
    let mut w = s.begin(T);
    assert!(w.link_card(id, second).await.unwrap());
    commit(w).await;
    let (session, home, cards) = s.session_home_by_token(&[1; 32]).await.unwrap().unwrap();
    let (account_row, account_cards) = s.account_home(id).await.unwrap().unwrap();
    assert_eq!(
        (session.id, session.account_id, session.created_at),
        (found.id, found.account_id, found.created_at)
    );
    assert_eq!(
        (
            session.last_seen_at,
            session.reauth_at,
            session.amr.as_str()
        ),
        (found.last_seen_at, found.reauth_at, "pwd otp mfa")
    );
    assert_eq!(
        (session.user_agent, session.client_ip),
        (found.user_agent.clone(), found.client_ip.clone())
    );
    assert_eq!((home.id, &home.user_id), (id, &account_row.user_id));
    assert_eq!(cards.len(), 2);
    assert_eq!(cards, account_cards);
    assert!(s.session_home_by_token(&[9; 32]).await.unwrap().is_none());
    // Seen times never go backwards.
    let mut w = s.begin(T.plus_secs(50));
    w.touch_session(a).await.unwrap();
    commit(w).await;
    let mut w = s.begin(T.plus_secs(10));
    w.touch_session(a).await.unwrap();
    w.mark_reauth(a).await.unwrap();
    commit(w).await;
    let found = s.session_by_token(&[1; 32]).await.unwrap().unwrap();
    assert_eq!(found.last_seen_at, T.plus_secs(50));
    assert_eq!(found.reauth_at, Some(T.plus_secs(10)));
    // Most recently seen first.
    assert_eq!(
        s.list_sessions(id)
            .await
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect::<Vec<_>>(),
        [a, b]
    );
    let mut w = s.begin(T);
    assert_eq!(w.delete_account_sessions(id, Some(a)).await.unwrap(), 1);
    commit(w).await;
    assert!(s.session_by_token(&[2; 32]).await.unwrap().is_none());
    let mut w = s.begin(T);
    assert!(w.delete_session(a).await.unwrap());
    assert!(!w.delete_session(b).await.unwrap());
    assert_eq!(w.delete_account_sessions(id, None).await.unwrap(), 0);
    commit(w).await;
    // A long user agent is kept to 300 characters.
    let mut w = s.begin(T);
    w.create_session(NewSession {
        user_agent: Some("x".repeat(1000)),
        ..new(3)
    })
    .await
    .unwrap();
    commit(w).await;
    let long = s.session_by_token(&[3; 32]).await.unwrap().unwrap();
    assert_eq!(long.user_agent.unwrap().len(), 300);
}
both!(sessions_conformance, sessions);

async fn devices(backend: Backend) {
    let (s, _db) = store(backend).await;
    let id = account(&s, "alice1", "378282246310005").await;
    let other = account(&s, "bob123", "371449635398431").await;
    let mut w = s.begin(T);
    let phone = w.create_device(id, &[5; 32], Some("Phone")).await.unwrap();
    commit(w).await;
    let mut w = s.begin(T.plus_secs(5));
    let laptop = w.create_device(id, &[6; 32], None).await.unwrap();
    commit(w).await;
    let found = s.device_by_token(&[5; 32]).await.unwrap().unwrap();
    assert_eq!(
        (
            found.id,
            found.account_id,
            found.failed_count,
            found.created_at
        ),
        (phone, id, 0, T)
    );
    assert_eq!(found.user_agent.as_deref(), Some("Phone"));
    assert!(s.device_by_token(&[7; 32]).await.unwrap().is_none());
    // The sign-in's one read: the account, and the device only when it is this account's.
    let alice = s.find_account("alice1").await.unwrap().unwrap();
    let (a, d) = s
        .find_account_on_device("alice1", Some(&[5; 32]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (a.id, a.password_hash.as_str()),
        (id, alice.password_hash.as_str())
    );
    let d = d.unwrap();
    assert_eq!(
        (
            d.id,
            d.account_id,
            d.created_at,
            d.last_seen_at,
            d.failed_count
        ),
        (
            found.id,
            found.account_id,
            found.created_at,
            found.last_seen_at,
            found.failed_count
        )
    );
    assert_eq!(
        (d.user_agent, d.locked_until, d.trusted_until),
        (
            found.user_agent.clone(),
            found.locked_until,
            found.trusted_until
        )
    );
    for token in [None, Some(&[7; 32]), Some(&[6; 32])] {
        let (a, d) = s
            .find_account_on_device("alice1", token)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.id, id);
        assert_eq!(
            d.map(|d| d.id),
            token.filter(|t| **t == [6; 32]).map(|_| laptop)
        );
    }
    // Another account's device is not this account's.
    let (b, d) = s
        .find_account_on_device("bob123", Some(&[5; 32]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((b.id, d.map(|d| d.id)), (other, None));
    assert!(s
        .find_account_on_device("nobody", Some(&[5; 32]))
        .await
        .unwrap()
        .is_none());
    // Most recently seen first; seen times never go backwards.
    let ids =
        |v: Vec<portcullis_core::ports::DeviceRow>| v.iter().map(|d| d.id).collect::<Vec<_>>();
    assert_eq!(ids(s.list_devices(id).await.unwrap()), [laptop, phone]);
    let mut w = s.begin(T.plus_secs(9));
    w.touch_device(phone).await.unwrap();
    commit(w).await;
    let mut w = s.begin(T.plus_secs(1));
    w.touch_device(phone).await.unwrap();
    commit(w).await;
    let listed = s.list_devices(id).await.unwrap();
    assert_eq!(ids(listed.clone()), [phone, laptop]);
    assert_eq!(listed[0].last_seen_at, T.plus_secs(9));
    // Trust is the account's own to give and take.
    let mut w = s.begin(T);
    assert!(w
        .set_device_trust(phone, id, Some(T.plus_secs(100)))
        .await
        .unwrap());
    assert!(!w
        .set_device_trust(phone, other, Some(T.plus_secs(100)))
        .await
        .unwrap());
    commit(w).await;
    assert_eq!(
        s.device_by_token(&[5; 32])
            .await
            .unwrap()
            .unwrap()
            .trusted_until,
        Some(T.plus_secs(100))
    );
    // The join reads every column where the plain read does, now that none is a default:
    // seen after it was made, two failures, locked, trusted.
    for _ in 0..2 {
        s.claim_attempt(Counter::Device(phone), T, 4).await.unwrap();
    }
    let mut w = s.begin(T);
    assert!(w
        .lock(Counter::Device(phone), T.plus_secs(30))
        .await
        .unwrap());
    commit(w).await;
    let plain = s.device_by_token(&[5; 32]).await.unwrap().unwrap();
    let (_, joined) = s
        .find_account_on_device("alice1", Some(&[5; 32]))
        .await
        .unwrap()
        .unwrap();
    let joined = joined.unwrap();
    let fields = |d: &portcullis_core::ports::DeviceRow| {
        (
            d.id,
            d.account_id,
            d.created_at,
            d.last_seen_at,
            d.user_agent.clone(),
            d.failed_count,
            d.locked_until,
            d.trusted_until,
        )
    };
    assert_eq!(fields(&joined), fields(&plain));
    assert_eq!(
        fields(&joined),
        (
            phone,
            id,
            T,
            T.plus_secs(9),
            Some("Phone".into()),
            2,
            Some(T.plus_secs(30)),
            Some(T.plus_secs(100))
        )
    );
    let mut w = s.begin(T);
    assert!(w.set_device_trust(phone, id, None).await.unwrap());
    w.forget_devices(id).await.unwrap();
    commit(w).await;
    assert!(s.list_devices(id).await.unwrap().is_empty());
}
both!(devices_conformance, devices);
