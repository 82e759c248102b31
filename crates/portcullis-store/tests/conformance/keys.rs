//! Sealed values by key id (key rotation): counted per key, read in batches past the current
//! key's values, and moved only over the value that was read.

use portcullis_core::contact::CodeChannel;
use portcullis_core::ports::{
    FactorKind, Message, NewFactor, OutboxStore, Outgoing, SealedColumn, SealedValues, Transactions,
};
use portcullis_testkit::{both, Backend};

use crate::support::{account, commit, store, T};

async fn factor(s: &portcullis_store::SqlStore, account_id: i64, secret: Option<&str>) -> i64 {
    let mut w = s.begin(T);
    let id = w
        .create_factor(NewFactor {
            account_id,
            kind: FactorKind::Passkey,
            name: "key".into(),
            secret: secret.map(str::to_owned),
            credential_id: Some(format!("cred-{}", secret.unwrap_or("none"))),
            confirmed: true,
        })
        .await
        .unwrap();
    commit(w).await;
    id
}

async fn sealed_values(backend: Backend) {
    let (s, _db) = store(backend).await;
    let id = account(&s, "alice1", "378282246310005").await;
    let legacy = factor(&s, id, Some("sealed:v1:AAAA")).await;
    let one = factor(&s, id, Some("sealed:v2:1:BBBB")).await;
    let two = factor(&s, id, Some("sealed:v2:2:CCCC")).await;
    let twelve = factor(&s, id, Some("sealed:v2:12:DDDD")).await;
    factor(&s, id, None).await;
    let count = |p: &'static str| {
        let s = &s;
        async move { s.count_sealed(SealedColumn::FactorSecret, p).await.unwrap() }
    };
    assert_eq!(count("sealed:v1:%").await, 1);
    assert_eq!(count("sealed:v2:1:%").await, 1, "key 12 is not key 1");
    assert_eq!(count("sealed:v2:2:%").await, 1);
    assert_eq!(count("sealed:v2:3:%").await, 0);
    assert_eq!(count("sealed:%").await, 4);

    // Everything not under key 2, in row order, in batches past `after`.
    let batch = s
        .sealed_not_under(SealedColumn::FactorSecret, "sealed:v2:2:%", 0, 2)
        .await
        .unwrap();
    let ids: Vec<i64> = batch.iter().map(|v| v.row_id).collect();
    assert_eq!(ids, vec![legacy, one]);
    assert_eq!(batch[0].value, "sealed:v1:AAAA");
    let rest = s
        .sealed_not_under(SealedColumn::FactorSecret, "sealed:v2:2:%", one, 10)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|v| v.row_id).collect::<Vec<_>>(),
        vec![twelve]
    );
    assert!(!rest.iter().any(|v| v.row_id == two));

    // A move happens only over the value that was read.
    assert!(s
        .replace_sealed(
            SealedColumn::FactorSecret,
            legacy,
            "sealed:v1:AAAA",
            "sealed:v2:2:EEEE"
        )
        .await
        .unwrap());
    assert!(!s
        .replace_sealed(
            SealedColumn::FactorSecret,
            one,
            "sealed:v2:1:stale",
            "sealed:v2:2:FFFF"
        )
        .await
        .unwrap());
    assert_eq!(count("sealed:v1:%").await, 0);
    assert_eq!(count("sealed:v2:2:%").await, 2);
    assert_eq!(
        count("sealed:v2:1:%").await,
        1,
        "the stale move changed nothing"
    );

    // Outbox bodies: only sensitive rows count, the others are never touched.
    let message = |body: &str, sensitive: bool| {
        Outgoing::from(Message {
            channel: CodeChannel::Email,
            to: "ann@example.com".into(),
            subject: "Your code".into(),
            body: body.into(),
            sensitive,
        })
    };
    let s = s.with_outbox_key(&[3; 32]);
    let ids = s
        .enqueue(
            &[message("code 1", true), message("sealed:v2:1:plain", false)],
            T,
        )
        .await
        .unwrap();
    assert_eq!(
        s.count_sealed(SealedColumn::OutboxBody, "sealed:v2:1:%")
            .await
            .unwrap(),
        1
    );
    let rows = s
        .sealed_not_under(SealedColumn::OutboxBody, "sealed:v2:2:%", 0, 10)
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.row_id).collect::<Vec<_>>(),
        vec![ids[0]]
    );
    assert!(s
        .replace_sealed(
            SealedColumn::OutboxBody,
            ids[0],
            &rows[0].value,
            "sealed:v2:2:GGGG"
        )
        .await
        .unwrap());
    assert_eq!(
        s.count_sealed(SealedColumn::OutboxBody, "sealed:v2:2:%")
            .await
            .unwrap(),
        1
    );
    assert!(s
        .sealed_not_under(SealedColumn::OutboxBody, "sealed:v2:2:%", 0, 10)
        .await
        .unwrap()
        .is_empty());
}
both!(sealed_values_by_key_id_conformance, sealed_values);
