//! The dashboard's runtime view (issue #21): the topology as a picture, and the figures
//! the picture is annotated with that only Rust can read.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/topology.svg` | the app's topology as an SVG picture: one box per source, processor and sink, per store and per topic, framed by sub-topology, with an arrow per link |
//! | `GET /api/topology/stores` | `{"stores": {"<store>": entries, ...}, "age_ms": ...}`: the entries each store holds in this instance's tasks |
//!
//! The picture is drawn from [`Topology::describe`](streams_core::topology::Topology::describe)
//! (its structure, not its text) with a small layered layout written here: every element
//! of a sub-topology (and the topics it reads) is put in a row by the longest path from
//! the sub-topology's roots, rows are ordered to keep links short (barycenters), and the
//! sub-topologies themselves are placed in rows by the longest path through the topics
//! that link them, so that records flow down the picture. Nothing is fetched at run
//! time: the SVG is text generated here, its style inline.
//!
//! The dashboard's script puts the live figures on it: per sub-topology the tasks and
//! records processed per second, per processor the records per second when the runtime
//! records `kafka_streams_stream_processor_node_process_rate` (both from `/metrics`), and
//! per store the entries from [`/api/topology/stores`](store_sizes). The elements carry
//! `data-id` (`node:<name>`, `store:<name>`, `topic:<name>`, internal topics with the
//! application id applied), the links `data-from` and `data-to`, for the script and the
//! browser test.
//!
//! The parts: the store sizes (`sizes`), the graph of the description (`graph`), its
//! layout (`layout`) and the SVG (`svg`).

mod graph;
mod layout;
#[cfg(test)]
mod picture_tests;
mod sizes;
mod svg;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::web::WebState;
use super::{APPLICATION_ID, ActivityConfig};
use sizes::{SizeCache, store_sizes};
use svg::topology_picture;

/// The routes of the runtime view, merged into [`super::web::router`].
pub(crate) fn routes() -> Router<Arc<WebState>> {
    let sizes = Arc::new(SizeCache::default());
    Router::new()
        .route("/api/topology.svg", get(topology_svg))
        .route(
            "/api/topology/stores",
            get(move |State(s): State<Arc<WebState>>| store_sizes(s, sizes.clone())),
        )
}

/// The SVG of the app's topology, drawn once.
async fn topology_svg() -> Response {
    static SVG: OnceLock<Result<String, String>> = OnceLock::new();
    let svg = SVG.get_or_init(|| {
        super::topology(&ActivityConfig::default())
            .map(|t| topology_picture(&t.describe(), APPLICATION_ID))
            .map_err(|e| e.to_string())
    });
    match svg {
        Ok(svg) => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            svg.clone(),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(serde_json::json!({ "error": e })),
        )
            .into_response(),
    }
}
