//! The OpenAPI document, generated from the code: the read routes from their
//! `#[utoipa::path]` annotations, the command routes from `coord_proto::ROUTES` (the same
//! table the router is built from) with the payload schemas derived from the domain's
//! command types.

use coord_domain::discipline::{
    AppealDecision, CloseCase, DecideDiscipline, OpenCase, ResolveAppeal,
};
use coord_domain::exchange::{AcknowledgeInformation, SendInformation};
use coord_domain::inspection::{
    CancelInspection, ConcludeInspection, ScheduleInspection, StartInspection,
};
use coord_proto::{Accepted, ErrorKind, ROUTES};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Ref, Required, ResponseBuilder};
use utoipa::{OpenApi, ToSchema};

use crate::problem::Problem;
use crate::{analytics, events, feed, queries, records};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Party inspection coordination API",
        description = "Coordination of Party inspection, supervision and discipline between the Provincial Police \
                       Party Committee and the district-level Party committees (Quy chế 23, Quy định 69-QĐ/TW). \
                       Commands are forwarded to the command services over NATS; status comes from the projector."
    ),
    paths(
        queries::province,
        queries::districts,
        queries::district,
        queries::timeline,
        queries::units,
        queries::dead_letters,
        queries::redrive,
        queries::projector,
        queries::rebuild,
        queries::healthz,
        crate::ready::readyz,
        crate::metrics::metrics,
        events::events,
        feed::export_events,
        feed::export_read_model,
        feed::schemas,
        feed::schema,
        feed::import,
        analytics::monthly,
        analytics::period,
        analytics::province_as_of,
        records::inspection,
        records::exchange,
        records::discipline_case,
        crate::sync::sync,
        crate::console::needs::needs,
    ),
    components(schemas(
        Problem,
        crate::ready::NotReady,
        crate::ready::Down,
        Accepted,
        ErrorKind,
        ScheduleInspection,
        StartInspection,
        ConcludeInspection,
        CancelInspection,
        SendInformation,
        AcknowledgeInformation,
        OpenCase,
        DecideDiscipline,
        CloseCase,
        AppealDecision,
        ResolveAppeal,
        crate::console::needs::Need,
        crate::console::needs::Needs,
    ))
)]
struct ApiDoc;

fn payload_schema(command: &str) -> String {
    match command {
        "inspection.schedule" => ScheduleInspection::name(),
        "inspection.start" => StartInspection::name(),
        "inspection.conclude" => ConcludeInspection::name(),
        "inspection.cancel" => CancelInspection::name(),
        "exchange.send" => SendInformation::name(),
        "exchange.acknowledge" => AcknowledgeInformation::name(),
        "discipline.open" => OpenCase::name(),
        "discipline.decide" => DecideDiscipline::name(),
        "discipline.close" => CloseCase::name(),
        "discipline.appeal" => AppealDecision::name(),
        "discipline.resolve_appeal" => ResolveAppeal::name(),
        other => unreachable!("every route has a payload type; {other} has none"),
    }
    .into_owned()
}

fn header(name: &str, description: &str) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build()
}

fn json(schema: &str) -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(schema)))
        .build()
}

/// Every route but `/healthz`, `/readyz` and `/metrics` needs a bearer token (see `crate::auth`).
fn bearer_security(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT (EdDSA), from `coordctl token create`")
                    .build(),
            ),
        );
    doc.security = Some(vec![SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
}

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(<crate::audit::AuditApi as OpenApi>::openapi());
    bearer_security(&mut doc);
    for route in ROUTES {
        let mut op = OperationBuilder::new()
            .tag(route.service)
            .summary(Some(route.summary))
            .operation_id(Some(route.command.replace('.', "_")))
            .parameter(header(
                "Idempotency-Key",
                "The same key twice returns the first result and appends nothing new",
            ))
            .parameter(header(
                "If-Match",
                "Apply only if the aggregate is at this version (the ETag of an earlier answer)",
            ))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", json(&payload_schema(route.command)))
                    .required(Some(Required::True))
                    .build(),
            ));
        if route.id_in_path {
            op = op.parameter(
                ParameterBuilder::new()
                    .name("id")
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .description(Some(format!("`{}` of the aggregate", route.id_field)))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build(),
            );
        }
        let ok = if route.id_in_path { "200" } else { "201" };
        op = op.response(
            ok,
            ResponseBuilder::new()
                .description("applied")
                .content("application/json", json("Accepted")),
        );
        if !route.id_in_path {
            op = op.response(
                "200",
                ResponseBuilder::new()
                    .description("already applied (same idempotency key)")
                    .content("application/json", json("Accepted")),
            );
        }
        for (status, what) in [
            ("400", "malformed request"),
            ("401", "no bearer token, or one that does not verify"),
            (
                "403",
                "a reader token, a command acting for another office, or one addressed to a \
                 stream another office writes",
            ),
            ("404", "unknown id"),
            ("409", "conflict or invalid state transition"),
            ("413", "the body is over the limit"),
            ("422", "a domain rule is broken"),
            ("503", "NATS or the log unavailable"),
            (
                "504",
                "no answer within the gateway's timeout; retry with the same key",
            ),
        ] {
            op = op.response(
                status,
                ResponseBuilder::new()
                    .description(what)
                    .content("application/problem+json", json("Problem")),
            );
        }
        doc.paths
            .add_path_operation(route.path, vec![HttpMethod::Post], op.build());
    }
    doc
}

#[cfg(test)]
mod tests {
    /// Every parameter declared in the path is in the path's template (utoipa's
    /// `IntoParams` puts parameters in the path unless told `parameter_in = Query`); the
    /// browser test validates the whole served document with a standard validator.
    #[test]
    fn path_parameters_are_in_their_paths() {
        let doc = serde_json::to_value(super::document()).unwrap();
        let mut wrong = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                for p in operation["parameters"].as_array().into_iter().flatten() {
                    let name = p["name"].as_str().unwrap_or_default();
                    if p["in"] == "path" && !path.contains(&format!("{{{name}}}")) {
                        wrong.push(format!("{method} {path}: {name}"));
                    }
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "declared in the path but not in it: {wrong:?}"
        );
    }
}
