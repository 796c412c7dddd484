//! Cost of authorization decisions, cold (Cedar evaluation) and cached. Not a pass/fail test:
//! `cargo test -p weft-governance --release --test governance -- --ignored --nocapture authorization_cost`.

use std::time::Instant;

use weft_governance::authz::{Action, Authorizer, DomainEntity, Mesh, PolicyScope, PolicySource, ProductEntity, Resource, StreamEntity};

/// A mesh of 50 domains × 4 products × 5 streams (1,000 streams), 10 owners and 20 team members
/// per domain, one domain policy per domain and 5 global policies.
fn large_mesh() -> (Mesh, Vec<PolicySource>) {
    let mut mesh = Mesh::default();
    let mut policies = Vec::new();
    for domain_idx in 0..50 {
        let domain = format!("d{domain_idx}");
        mesh.domains.push(DomainEntity {
            name: domain.clone(),
            owners: (0..10).map(|n| format!("owner{domain_idx}-{n}")).collect(),
            team: (0..20).map(|n| format!("member{domain_idx}-{n}")).collect(),
        });
        for product_idx in 0..4 {
            let product = format!("{domain}.p{product_idx}");
            mesh.products.push(ProductEntity { id: product.clone(), domain: domain.clone() });
            for stream_idx in 0..5 {
                let classifications = if stream_idx == 0 { vec!["pii".to_string()] } else { vec![] };
                mesh.streams.push(StreamEntity {
                    name: format!("{product}.s{stream_idx}"),
                    product: Some(product.clone()),
                    classifications,
                });
            }
        }
        policies.push(PolicySource {
            name: format!("{domain}-share"),
            scope: PolicyScope::Domain(domain.clone()),
            text: format!(
                r#"permit (principal in Weft::Domain::"{domain}", action in [Weft::Action::"consume", Weft::Action::"read_dead_letters"], resource in Weft::Domain::"{domain}");"#
            ),
        });
    }
    for global_idx in 0..5 {
        policies.push(PolicySource {
            name: format!("global{global_idx}"),
            scope: PolicyScope::Global,
            text: format!(
                r#"forbid (principal == Weft::Principal::"banned{global_idx}", action, resource);
permit (principal, action == Weft::Action::"consume", resource) when {{ resource is Weft::Stream && resource.classifications.contains("public{global_idx}") }};"#
            ),
        });
    }
    (mesh, policies)
}

#[test]
#[ignore = "measurement; run with --ignored --nocapture"]
fn authorization_cost_cold_and_cached() {
    let (mesh, policies) = large_mesh();
    let started = Instant::now();
    let authorizer = Authorizer::new(&policies, &mesh).unwrap();
    println!("build: {} policies, {} streams: {:?}", policies.len() + 6, mesh.streams.len(), started.elapsed());

    let requests: Vec<(String, Action, Resource)> = (0..1000)
        .map(|n| {
            let domain_idx = n % 50;
            let principal = if n % 2 == 0 { format!("member{domain_idx}-{}", n % 20) } else { format!("owner{}-{}", (n + 1) % 50, n % 10) };
            let stream = format!("d{domain_idx}.p{}.s{}", n % 4, n % 5);
            (principal, if n % 3 == 0 { Action::Produce } else { Action::Consume }, Resource::Stream(stream))
        })
        .collect();

    let defaults_only = Authorizer::new(&[], &mesh).unwrap();
    let started = Instant::now();
    for (principal, action, resource) in &requests {
        std::hint::black_box(defaults_only.evaluate(principal, *action, resource));
    }
    println!("cold, built-in policies only (6): {} ns/decision", started.elapsed().as_nanos() / requests.len() as u128);

    let started = Instant::now();
    let mut n_allowed = 0;
    for (principal, action, resource) in &requests {
        n_allowed += usize::from(authorizer.evaluate(principal, *action, resource).allowed);
    }
    let cold = started.elapsed();

    for (principal, action, resource) in &requests {
        authorizer.is_authorized(principal, *action, resource);
    }
    let rounds = 20;
    let started = Instant::now();
    for _ in 0..rounds {
        for (principal, action, resource) in &requests {
            std::hint::black_box(authorizer.is_authorized(principal, *action, resource));
        }
    }
    let cached = started.elapsed();
    println!(
        "cold (Cedar evaluation): {} ns/decision; cached: {} ns/decision; {n_allowed} of {} allowed",
        cold.as_nanos() / requests.len() as u128,
        cached.as_nanos() / (rounds * requests.len()) as u128,
        requests.len()
    );
}
