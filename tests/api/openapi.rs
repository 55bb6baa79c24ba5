//! The OpenAPI document: generated from the code, checked in, served, and every documented
//! operation is really routed.

use crate::helpers::spawn_app;

#[test]
fn checked_in_spec_matches_the_code() {
    let generated = sluice::openapi::yaml().unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.yaml");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "openapi/openapi.yaml is stale: run `UPDATE_OPENAPI=1 cargo nextest run openapi::` and commit it"
    );
}

#[tokio::test]
async fn served_document_equals_the_generated_one() {
    let app = spawn_app(&[]).await;
    let served: serde_json::Value = app
        .client
        .get(app.at("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let generated = serde_json::to_value(sluice::openapi::document()).unwrap();
    assert_eq!(served, generated);
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = spawn_app(&[
        ("RATE_LIMIT_BURST", "10000"),
        ("AI_RATE_LIMIT_BURST", "10000"),
    ])
    .await;
    let token = app.token("spec-walker");
    let doc = serde_json::to_value(sluice::openapi::document()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 10);
    for (template, item) in paths {
        let path = template
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    uuid::Uuid::new_v4().to_string()
                } else {
                    seg.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in item.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = app
                .client
                .request(method.clone(), app.at(&path))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            assert_ne!(
                status, 405,
                "{method} {template} is documented but not routed"
            );
            assert!(
                !(status == 404 && body.contains("route not found")),
                "{method} {template} is documented but not routed"
            );
        }
    }
}
