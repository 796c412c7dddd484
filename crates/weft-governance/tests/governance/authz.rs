//! Authorization: defaults, federation, the domain scope rule, error positions, explanations, caching.

use std::sync::Arc;

use weft_governance::authz::{
    Action, Authorizer, DomainEntity, GroupDirectory, GroupRecord, Mesh, PolicyScope, PolicySource, PrincipalEntity, ProductEntity,
    Resource, SharedAuthorizer, StreamEntity, check_policy_resource,
};
use weft_governance::codes;

/// Two domains: sales (owner alice, team bob; eve declares sales on her identity record) and
/// marketing (owner carol). dave belongs to nothing.
pub fn fixture_mesh() -> Mesh {
    Mesh {
        domains: vec![
            DomainEntity { name: "sales".into(), owners: vec!["alice".into()], team: vec!["bob".into()] },
            DomainEntity { name: "marketing".into(), owners: vec!["carol".into()], team: vec![] },
        ],
        products: vec![
            ProductEntity { id: "sales.orders".into(), domain: "sales".into() },
            ProductEntity { id: "marketing.campaigns".into(), domain: "marketing".into() },
        ],
        streams: vec![
            StreamEntity { name: "orders".into(), product: Some("sales.orders".into()), classifications: vec!["PII".into()] },
            StreamEntity { name: "orders-eu".into(), product: Some("sales.orders".into()), classifications: vec![] },
            StreamEntity { name: "campaigns".into(), product: Some("marketing.campaigns".into()), classifications: vec![] },
            StreamEntity { name: "loose".into(), product: None, classifications: vec![] },
        ],
        principals: vec![PrincipalEntity { name: "eve".into(), domains: vec!["sales".into()] }],
    }
}

fn global(name: &str, text: &str) -> PolicySource {
    PolicySource { name: name.into(), scope: PolicyScope::Global, text: text.into() }
}

fn domain(name: &str, domain: &str, text: &str) -> PolicySource {
    PolicySource { name: name.into(), scope: PolicyScope::Domain(domain.into()), text: text.into() }
}

/// One expectation: principal, action, resource (short form), allowed, and the deciding policy ids.
type Case<'a> = (&'a str, &'a str, &'a str, bool, &'a [&'a str]);

/// Builds an authorizer from `policies` over the fixture mesh and checks every case.
fn check(policies: &[PolicySource], cases: &[Case]) {
    let authorizer = Authorizer::new(policies, &fixture_mesh()).unwrap();
    for (principal, action, resource, allowed, reasons) in cases {
        let action: Action = action.parse().unwrap();
        let resource: Resource = resource.parse().unwrap();
        let decision = authorizer.is_authorized(principal, action, &resource);
        assert_eq!(decision.allowed, *allowed, "{principal} {action} {resource}: {decision:?}");
        assert_eq!(decision.reasons, reasons.iter().map(|id| id.to_string()).collect::<Vec<_>>(), "{principal} {action} {resource}");
        assert!(decision.errors.is_empty(), "{principal} {action} {resource}: {:?}", decision.errors);
    }
}

#[test]
fn defaults_let_owners_produce_and_apply_everyone_read_the_catalog_and_nobody_else_consume() {
    check(
        &[],
        &[
            ("alice", "produce", "stream:orders", true, &["default/owners_streams"]),
            ("alice", "consume", "stream:orders", true, &["default/owners_streams"]),
            ("alice", "apply", "product:sales.orders", true, &["default/owners_products"]),
            ("alice", "apply", "domain:sales", true, &["default/owners_domain"]),
            ("alice", "replay_dead_letters", "stream:orders", true, &["default/owners_streams"]),
            ("alice", "unmask", "product:sales.orders", false, &[]),
            ("alice", "produce", "stream:campaigns", false, &[]),
            ("alice", "apply", "domain:marketing", false, &[]),
            ("alice", "produce", "stream:loose", false, &[]),
            ("bob", "consume", "stream:orders", false, &[]),
            ("bob", "produce", "stream:orders", false, &[]),
            ("carol", "consume", "stream:orders", false, &[]),
            ("dave", "consume", "product:sales.orders", false, &[]),
            ("dave", "read_catalog", "stream:orders", true, &["default/catalog"]),
            ("dave", "read_catalog", "domain:marketing", true, &["default/catalog"]),
            ("dave", "read_catalog", "product:unknown", true, &["default/catalog"]),
            ("dave", "consume", "group:reporting", false, &[]),
            ("dave", "admin", "principal:admin", false, &[]),
            ("admin", "consume", "stream:orders", true, &["default/admin"]),
            ("admin", "admin", "principal:bob", true, &["default/admin"]),
            ("admin", "unmask", "stream:loose", true, &["default/admin"]),
            ("nobody-known", "produce", "stream:unknown", false, &[]),
        ],
    );
}

#[test]
fn grant_on_product_covers_its_streams_and_team_grants_use_membership() {
    let share = domain(
        "sales-share",
        "sales",
        r#"permit (principal == Weft::Principal::"dave", action == Weft::Action::"consume", resource in Weft::DataProduct::"sales.orders");"#,
    );
    let team = domain(
        "sales-team",
        "sales",
        r#"permit (principal in Weft::Domain::"sales", action == Weft::Action::"consume", resource in Weft::Domain::"sales");"#,
    );
    check(
        &[share, team],
        &[
            ("dave", "consume", "stream:orders", true, &["sales-share/0"]),
            ("dave", "consume", "stream:orders-eu", true, &["sales-share/0"]),
            ("dave", "consume", "product:sales.orders", true, &["sales-share/0"]),
            ("dave", "consume", "stream:campaigns", false, &[]),
            ("dave", "produce", "stream:orders", false, &[]),
            ("bob", "consume", "stream:orders", true, &["sales-team/0"]),
            ("eve", "consume", "stream:orders-eu", true, &["sales-team/0"]),
            ("carol", "consume", "stream:orders", false, &[]),
        ],
    );
}

#[test]
fn global_forbid_beats_domain_permit_and_binds_admin() {
    let share = domain(
        "sales-share",
        "sales",
        r#"permit (principal == Weft::Principal::"carol", action == Weft::Action::"consume", resource in Weft::Domain::"sales");"#,
    );
    let no_pii = global(
        "no-pii-consume",
        r#"forbid (principal, action == Weft::Action::"consume", resource)
when { resource is Weft::Stream && resource.classifications.contains("pii") };"#,
    );
    check(
        &[share, no_pii],
        &[
            ("carol", "consume", "stream:orders", false, &["no-pii-consume/0"]),
            ("carol", "consume", "stream:orders-eu", true, &["sales-share/0"]),
            ("alice", "consume", "stream:orders", false, &["no-pii-consume/0"]),
            ("admin", "consume", "stream:orders", false, &["no-pii-consume/0"]),
            ("alice", "produce", "stream:orders", true, &["default/owners_streams"]),
        ],
    );
}

#[test]
fn domain_forbid_binds_its_domain_but_not_the_root_admin() {
    let freeze = domain("sales-freeze", "sales", r#"forbid (principal, action, resource in Weft::Domain::"sales");"#);
    check(
        &[freeze],
        &[
            ("alice", "produce", "stream:orders", false, &["sales-freeze/0"]),
            ("alice", "apply", "domain:sales", false, &["sales-freeze/0"]),
            ("admin", "apply", "domain:sales", true, &["default/admin"]),
            ("carol", "produce", "stream:campaigns", true, &["default/owners_streams"]),
        ],
    );
}

#[test]
fn domain_policy_is_inert_once_its_product_moves_to_another_domain() {
    let share = domain(
        "sales-share",
        "sales",
        r#"permit (principal == Weft::Principal::"dave", action == Weft::Action::"consume", resource in Weft::DataProduct::"sales.orders");"#,
    );
    let mut moved = fixture_mesh();
    moved.products[0].domain = "marketing".into();
    let authorizer = Authorizer::new(&[share], &moved).unwrap();
    let decision = authorizer.is_authorized("dave", Action::Consume, &Resource::Stream("orders".into()));
    assert!(!decision.allowed, "{decision:?}");
}

#[test]
fn domain_policy_reaching_outside_its_domain_is_refused_at_check_time() {
    let mesh = fixture_mesh();
    let consume = r#"action == Weft::Action::"consume""#;
    let cases: &[(String, Option<&str>)] = &[
        (format!("permit (principal, {consume}, resource in Weft::Domain::\"sales\");"), None),
        (format!("permit (principal, {consume}, resource == Weft::Domain::\"sales\");"), None),
        (format!("permit (principal, {consume}, resource in Weft::DataProduct::\"sales.orders\");"), None),
        (format!("permit (principal, {consume}, resource == Weft::Stream::\"orders\");"), None),
        (format!("permit (principal, {consume}, resource is Weft::Stream in Weft::Domain::\"sales\");"), None),
        ("forbid (principal, action, resource in Weft::Domain::\"sales\");".to_string(), None),
        (format!("permit (principal in Weft::Domain::\"marketing\", {consume}, resource in Weft::Domain::\"sales\");"), None),
        (format!("permit (principal, {consume}, resource);"), Some(codes::POLICY_OUTSIDE_DOMAIN)),
        (format!("permit (principal, {consume}, resource is Weft::Stream);"), Some(codes::POLICY_OUTSIDE_DOMAIN)),
        (
            format!("permit (principal, {consume}, resource) when {{ resource in Weft::Domain::\"sales\" }};"),
            Some(codes::POLICY_OUTSIDE_DOMAIN),
        ),
        (format!("permit (principal, {consume}, resource in Weft::Domain::\"marketing\");"), Some(codes::POLICY_OUTSIDE_DOMAIN)),
        (
            format!("permit (principal, {consume}, resource in Weft::DataProduct::\"marketing.campaigns\");"),
            Some(codes::POLICY_OUTSIDE_DOMAIN),
        ),
        (format!("permit (principal, {consume}, resource == Weft::Stream::\"campaigns\");"), Some(codes::POLICY_OUTSIDE_DOMAIN)),
        (format!("permit (principal, {consume}, resource == Weft::Stream::\"loose\");"), Some(codes::POLICY_OUTSIDE_DOMAIN)),
        (format!("permit (principal, {consume}, resource in Weft::DataProduct::\"unknown\");"), Some(codes::POLICY_OUTSIDE_DOMAIN)),
        (format!("forbid (principal, {consume}, resource);"), Some(codes::POLICY_OUTSIDE_DOMAIN)),
        ("permit (principal, action, resource in Weft::Domain::\"sales\");".to_string(), Some(codes::POLICY_FORBIDDEN_ACTION)),
        (
            "permit (principal, action == Weft::Action::\"admin\", resource in Weft::Domain::\"sales\");".to_string(),
            Some(codes::POLICY_FORBIDDEN_ACTION),
        ),
        (
            "permit (principal, action in [Weft::Action::\"consume\", Weft::Action::\"admin\"], resource in Weft::Domain::\"sales\");"
                .to_string(),
            Some(codes::POLICY_FORBIDDEN_ACTION),
        ),
    ];
    for (text, expected) in cases {
        let result = check_policy_resource("p", &PolicyScope::Domain("sales".into()), text, &mesh);
        match expected {
            None => assert_eq!(result, Ok(1), "{text}"),
            Some(code) => assert_eq!(result.as_ref().map_err(|error| error.code), Err(*code), "{text}: {result:?}"),
        }
    }
    // The same texts are fine as global policies: scope is the only difference.
    let global_text = format!("permit (principal, {consume}, resource);");
    assert_eq!(check_policy_resource("p", &PolicyScope::Global, &global_text, &mesh), Ok(1));
}

#[test]
fn outside_domain_error_points_at_the_offending_policy() {
    let text = "// first is fine\npermit (principal, action == Weft::Action::\"consume\", resource in Weft::Domain::\"sales\");\n\n  permit (principal, action == Weft::Action::\"consume\", resource);\n";
    let error = check_policy_resource("sales-share", &PolicyScope::Domain("sales".into()), text, &fixture_mesh()).unwrap_err();
    assert_eq!((error.code, error.index, error.line, error.column), (codes::POLICY_OUTSIDE_DOMAIN, Some(1), 4, 3), "{error}");
    assert_eq!(error.policy, "sales-share");
}

#[test]
fn cedar_syntax_error_is_reported_with_line_and_column() {
    // Line 2 lacks the comma before `resource`.
    let text = "permit (principal, action == Weft::Action::\"consume\", resource in Weft::Domain::\"sales\");\npermit (principal, action == Weft::Action::\"consume\" resource);";
    let error = check_policy_resource("broken", &PolicyScope::Global, text, &fixture_mesh()).unwrap_err();
    assert_eq!(error.code, codes::POLICY_SYNTAX_ERROR, "{error}");
    assert_eq!(error.line, 2, "{error}");
    assert!(error.column > 1, "{error}");
    assert!(error.to_string().contains("line 2, column"), "{error}");
    assert_eq!(error.to_string(), "policy.syntax_error: policy broken: line 2, column 54: unexpected token `resource`");
}

#[test]
fn policies_are_validated_against_the_schema_with_positions() {
    let mesh = fixture_mesh();
    let cases: &[(&str, &str, usize)] = &[
        ("permit (principal, action == Weft::Action::\"delete\", resource);", codes::POLICY_INVALID, 1),
        (
            "permit (principal, action, resource);\npermit (principal, action == Weft::Action::\"consume\", resource)\n  when { resource.owner == principal };",
            codes::POLICY_INVALID,
            3,
        ),
        ("permit (principal == Weft::User::\"x\", action, resource);", codes::POLICY_INVALID, 1),
        ("permit (principal == ?principal, action, resource);", codes::POLICY_TEMPLATE_NOT_ALLOWED, 1),
    ];
    for (text, code, line) in cases {
        let error = check_policy_resource("g", &PolicyScope::Global, text, &mesh).unwrap_err();
        assert_eq!((error.code, error.line), (*code, *line), "{text}: {error}");
    }
}

#[test]
fn policy_resources_have_names_sizes_and_reserved_default() {
    let mesh = fixture_mesh();
    let ok = "permit (principal, action == Weft::Action::\"consume\", resource);";
    for name in ["default", "", "has space", &"x".repeat(129)] {
        let error = check_policy_resource(name, &PolicyScope::Global, ok, &mesh).unwrap_err();
        assert_eq!(error.code, codes::POLICY_INVALID_RESOURCE, "{name:?}");
    }
    let huge = ok.repeat(weft_governance::authz::POLICY_TEXT_BYTES_MAX / ok.len() + 1);
    assert_eq!(check_policy_resource("big", &PolicyScope::Global, &huge, &mesh).unwrap_err().code, codes::POLICY_TOO_LARGE);
    let many = ok.repeat(weft_governance::authz::POLICIES_PER_RESOURCE_MAX + 1);
    assert_eq!(check_policy_resource("many", &PolicyScope::Global, &many, &mesh).unwrap_err().code, codes::POLICY_TOO_LARGE);
    let twice = [global("same", ok), global("same", ok)];
    assert!(Authorizer::new(&twice, &mesh).is_err());
}

#[test]
fn policy_ids_are_resource_name_and_index() {
    let text = r#"
permit (principal == Weft::Principal::"x", action == Weft::Action::"consume", resource);
permit (principal == Weft::Principal::"y", action == Weft::Action::"consume", resource);
// the third policy, index 2
permit (principal == Weft::Principal::"dave", action == Weft::Action::"consume", resource == Weft::Stream::"loose");
"#;
    check(&[global("readers", text)], &[("dave", "consume", "stream:loose", true, &["readers/2"])]);
}

#[test]
fn explain_names_the_deciding_policies_and_denials_name_only_action_and_resource() {
    let no_pii = global(
        "no-pii",
        r#"forbid (principal, action == Weft::Action::"consume", resource) when { resource is Weft::Stream && resource.classifications.contains("pii") };"#,
    );
    let authorizer = Authorizer::new(&[no_pii], &fixture_mesh()).unwrap();
    let orders = Resource::Stream("orders".into());

    let explanation = authorizer.explain("alice", Action::Consume, &orders);
    let rendered = explanation.to_string();
    assert!(!explanation.decision.allowed);
    assert!(rendered.starts_with("decision: deny\n"), "{rendered}");
    assert!(rendered.contains("no-pii/0 (forbid)") && rendered.contains("classifications.contains(\"pii\")"), "{rendered}");

    let allowed = authorizer.explain("alice", Action::Produce, &orders).to_string();
    assert!(allowed.contains("default/owners_streams (permit)"), "{allowed}");
    let default_deny = authorizer.explain("dave", Action::Produce, &orders).to_string();
    assert!(default_deny.contains("default deny"), "{default_deny}");

    let denied = explanation.decision.check(Action::Consume, &orders).unwrap_err();
    assert_eq!(denied.code(), codes::AUTHZ_DENIED);
    assert_eq!(denied.to_string(), r#"not allowed to consume on Weft::Stream::"orders""#);
}

#[test]
fn requests_outside_the_schema_are_denied_with_an_error() {
    let authorizer = Authorizer::new(&[], &fixture_mesh()).unwrap();
    let decision = authorizer.is_authorized("admin", Action::Produce, &Resource::Domain("sales".into()));
    assert!(!decision.allowed);
    assert!(decision.errors[0].starts_with(codes::AUTHZ_INVALID_REQUEST), "{decision:?}");
}

#[test]
fn decisions_are_cached_per_request_and_a_rebuild_invalidates_them() {
    let shared = SharedAuthorizer::new(Authorizer::new(&[], &fixture_mesh()).unwrap());
    let orders = Resource::Stream("orders".into());
    let current = shared.current();
    assert!(!current.is_authorized("dave", Action::Consume, &orders).allowed);
    assert!(!current.is_authorized("dave", Action::Consume, &orders).allowed);
    assert!(current.is_authorized("dave", Action::ReadCatalog, &orders).allowed);
    assert_eq!(current.n_cached(), 2);

    let grant = domain(
        "share",
        "sales",
        r#"permit (principal == Weft::Principal::"dave", action == Weft::Action::"consume", resource in Weft::Domain::"sales");"#,
    );
    shared.replace(Authorizer::new(&[grant], &fixture_mesh()).unwrap());
    assert!(shared.current().is_authorized("dave", Action::Consume, &orders).allowed);

    // A resource change (dave becomes an owner of sales) is a rebuild too.
    let mut mesh = fixture_mesh();
    mesh.domains[0].owners.push("dave".into());
    shared.replace(Authorizer::new(&[], &mesh).unwrap());
    assert!(shared.current().is_authorized("dave", Action::Produce, &orders).allowed);
}

#[test]
fn schema_text_names_every_public_type_and_action() {
    let schema = weft_governance::authz::SCHEMA;
    assert!(schema.contains("namespace Weft"));
    for entity in ["Principal", "Domain", "DataProduct", "Stream", "ConsumerGroup"] {
        assert!(schema.contains(&format!("entity {entity}")), "{entity}");
    }
    for action in Action::ALL {
        assert!(schema.contains(&format!("action \"{}\"", action.name())), "{action}");
    }
}

/// A consumer group is consumed by its creator and by the owners of the streams it was used on
/// (and admin); nobody else until a global policy grants it. The directory is read at each
/// decision, so a group recorded after the authorizer was built is decided on what it is now.
#[test]
fn a_consumer_group_is_consumed_by_its_creator_and_its_streams_owners() {
    let groups = Arc::new(GroupDirectory::default());
    let grant = global(
        "dave-reporting",
        r#"permit(principal == Weft::Principal::"dave", action == Weft::Action::"consume", resource == Weft::ConsumerGroup::"reporting");"#,
    );
    let authorizer = Authorizer::new(&[grant], &fixture_mesh()).unwrap().with_groups(Arc::clone(&groups));
    let allowed = |principal: &str, group: &str| {
        let decision = authorizer.is_authorized(principal, Action::Consume, &Resource::ConsumerGroup(group.into()));
        assert!(decision.errors.is_empty(), "{decision:?}");
        decision.allowed
    };
    assert!(!allowed("bob", "billing") && !allowed("alice", "billing"), "a group nobody used is nobody's");
    assert!(allowed("admin", "billing"));

    assert!(groups.insert("billing", GroupRecord { creator: "bob".into(), streams: Default::default() }));
    assert!(!groups.insert("billing", GroupRecord { creator: "eve".into(), streams: Default::default() }), "the first creator stays");
    assert!(allowed("bob", "billing"), "its creator");
    assert!(!allowed("alice", "billing") && !allowed("carol", "billing") && !allowed("eve", "billing"));
    assert!(groups.add_stream("billing", "orders"));
    assert!(allowed("alice", "billing"), "the owner of a stream it was used on");
    assert!(!allowed("carol", "billing"), "not the owner of another domain");
    assert!(!allowed("eve", "billing"), "team members are not owners");
    assert!(allowed("dave", "reporting") && !allowed("dave", "billing"), "a global policy grants a group");
    let explained = authorizer.explain("bob", Action::Consume, &Resource::ConsumerGroup("billing".into()));
    assert_eq!(explained.decision.reasons, ["default/consumer_groups"]);
}
