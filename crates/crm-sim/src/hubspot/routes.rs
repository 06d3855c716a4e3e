//! The route table. Business routes are registered per object type with the
//! type in the path literally (`/crm/v3/objects/contacts/{id}`), so that
//! `MatchedPath` — used for stats keys and fault targeting — names the route
//! the way HubSpot's docs do.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;

use super::admin;
use super::error::{ApiError, HsJson, HsPath, HsQuery};
use super::gate::gate;
use super::handlers::{self, BatchInputs, BatchReadInput, PatchInput, UpdateInput};
use super::objects::ObjectType;
use super::render::QueryParams;
use super::search::SearchRequest;
use super::state::App;
use super::writes::{CreateInput, UpsertInput};

/// Large enough for 100 notes of 65,536 characters each.
const BODY_LIMIT_BYTES: usize = 32 * 1024 * 1024;

/// The v4 association list, named as in HubSpot's guide (D6).
const V4_ASSOCIATIONS: &str =
    "/crm/v4/objects/{fromObjectType}/{objectId}/associations/{toObjectType}";

pub(crate) fn build(app: App) -> Router {
    let mut business: Router<App> = Router::new();
    for object in ObjectType::ALL {
        let base = format!("/crm/v3/objects/{}", object.plural());
        business = business
            .route(
                &base,
                get(
                    move |State(app): State<App>,
                          HsQuery(q): HsQuery<Vec<(String, String)>>,
                          headers: HeaderMap| {
                        handlers::list(app, object, QueryParams(q), headers)
                    },
                )
                .post(
                    move |State(app): State<App>, HsJson(input): HsJson<CreateInput>| {
                        handlers::create(app, object, input)
                    },
                ),
            )
            .route(
                &format!("{base}/{{id}}"),
                get(
                    move |State(app): State<App>,
                          HsPath(id): HsPath<String>,
                          HsQuery(q): HsQuery<Vec<(String, String)>>,
                          headers: HeaderMap| {
                        handlers::read(app, object, id, QueryParams(q), headers)
                    },
                )
                .patch(
                    move |State(app): State<App>,
                          HsPath(id): HsPath<String>,
                          HsQuery(q): HsQuery<Vec<(String, String)>>,
                          HsJson(input): HsJson<PatchInput>| {
                        handlers::update(app, object, id, QueryParams(q), input)
                    },
                ),
            )
            .route(
                &format!("{base}/search"),
                post(
                    move |State(app): State<App>, HsJson(request): HsJson<SearchRequest>| {
                        handlers::search_objects(app, object, request)
                    },
                ),
            )
            .route(
                &format!("{base}/batch/read"),
                post(
                    move |State(app): State<App>, HsJson(input): HsJson<BatchReadInput>| {
                        handlers::batch_read(app, object, input)
                    },
                ),
            )
            .route(
                &format!("{base}/batch/update"),
                post(
                    move |State(app): State<App>,
                          HsJson(input): HsJson<BatchInputs<UpdateInput>>| {
                        handlers::batch_update(app, object, input)
                    },
                ),
            )
            .route(
                &format!("{base}/batch/create"),
                post(
                    move |State(app): State<App>,
                          HsJson(input): HsJson<BatchInputs<CreateInput>>| {
                        handlers::batch_create(app, object, input)
                    },
                ),
            )
            .route(
                &format!("/crm/v3/properties/{}", object.plural()),
                get(move |State(app): State<App>| handlers::list_properties(app, object)),
            )
            .route(
                &format!("/crm/v3/properties/{}/{{name}}", object.plural()),
                get(
                    move |State(app): State<App>, HsPath(name): HsPath<String>| {
                        handlers::read_property(app, object, name)
                    },
                ),
            );
    }
    let business = business
        .route(
            "/crm/v3/objects/contacts/batch/upsert",
            post(
                |State(app): State<App>, HsJson(input): HsJson<BatchInputs<UpsertInput>>| {
                    handlers::batch_upsert(app, input)
                },
            ),
        )
        .route(
            "/crm/v3/pipelines/deals",
            get(|State(app): State<App>| handlers::deal_pipelines(app)),
        )
        // One template for every pair of object types, as HubSpot documents it;
        // the handler parses the types (plural, singular or ids).
        .route(
            V4_ASSOCIATIONS,
            get(
                |State(app): State<App>,
                 HsPath(path): HsPath<(String, String, String)>,
                 HsQuery(q): HsQuery<Vec<(String, String)>>,
                 headers: HeaderMap| {
                    handlers::list_associations(app, path, QueryParams(q), headers)
                },
            ),
        )
        .route_layer(middleware::from_fn_with_state(app.clone(), gate));

    Router::new()
        .merge(business)
        .merge(admin::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .with_state(app)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        format!("Unable to route {method} {}: no such endpoint", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "VALIDATION_ERROR",
        format!("Method {method} is not allowed on {}", uri.path()),
    )
}
