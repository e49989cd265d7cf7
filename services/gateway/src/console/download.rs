//! The overview's district table as a download: `GET /downloads/districts.csv` (UTF-8
//! with a byte-order mark, so spreadsheet programs read the diacritics) and
//! `/downloads/districts.xlsx` (rust_xlsxwriter). One row per unit and a last row for
//! the whole province, with Vietnamese headers: the figures the overview shows.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use coord_proto::read::{DisciplineCounts, DistrictList, ProvinceSummary, QueryRequest};

use super::session::Visitor;
use crate::AppState;
use crate::problem::Problem;
use crate::queries::query;

/// The table's headers.
pub const HEADERS: [&str; 10] = [
    "Đơn vị",
    "Đã phối hợp",
    "Đã kiểm tra, giám sát",
    "Cuộc kiểm tra, giám sát đã kết luận",
    "Tổ chức đảng bị kỷ luật",
    "Đảng viên bị kỷ luật",
    "Đảng viên: khiển trách",
    "Đảng viên: cảnh cáo",
    "Đảng viên: cách chức",
    "Đảng viên: khai trừ",
];

/// One cell: text or a count.
enum Cell {
    Text(String),
    Count(u64),
}

fn yes(b: bool) -> Cell {
    Cell::Text(if b { "có" } else { "chưa" }.into())
}

fn discipline_cells(d: &DisciplineCounts) -> [Cell; 6] {
    [
        Cell::Count(d.organizations_disciplined),
        Cell::Count(d.members_disciplined),
        Cell::Count(d.members.reprimand),
        Cell::Count(d.members.warning),
        Cell::Count(d.members.removal_from_post),
        Cell::Count(d.members.expulsion),
    ]
}

/// The rows, units then the province.
async fn rows(s: &AppState) -> Result<Vec<Vec<Cell>>, Problem> {
    let list: DistrictList = query(s, "districts", QueryRequest::default()).await?;
    let summary: ProvinceSummary = query(s, "province_summary", QueryRequest::default()).await?;
    let mut rows: Vec<Vec<Cell>> = list
        .districts
        .iter()
        .map(|d| {
            let mut row = vec![
                Cell::Text(d.name.clone()),
                yes(d.coordinated),
                yes(d.covered),
                Cell::Count(d.inspections.concluded),
            ];
            row.extend(discipline_cells(&d.discipline));
            row
        })
        .collect();
    let mut total = vec![
        Cell::Text("Toàn tỉnh".into()),
        Cell::Count(summary.districts_coordinated),
        Cell::Count(summary.districts_covered),
        Cell::Count(summary.inspections.concluded),
    ];
    total.extend(discipline_cells(&summary.discipline));
    rows.push(total);
    Ok(rows)
}

fn csv(rows: &[Vec<Cell>]) -> Result<Vec<u8>, Problem> {
    let mut out = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
    let failed = |e: csv::Error| {
        Problem::new(
            coord_proto::ErrorKind::Internal,
            "csv_failed",
            e.to_string(),
        )
    };
    out.write_record(HEADERS).map_err(failed)?;
    for row in rows {
        out.write_record(row.iter().map(|c| match c {
            Cell::Text(t) => t.clone(),
            Cell::Count(n) => n.to_string(),
        }))
        .map_err(failed)?;
    }
    out.into_inner().map_err(|e| {
        Problem::new(
            coord_proto::ErrorKind::Internal,
            "csv_failed",
            e.to_string(),
        )
    })
}

fn xlsx(rows: &[Vec<Cell>]) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("Đơn vị")?;
    let bold = rust_xlsxwriter::Format::new().set_bold();
    for (col, h) in HEADERS.iter().enumerate() {
        sheet.write_string_with_format(0, col as u16, *h, &bold)?;
    }
    for (r, row) in rows.iter().enumerate() {
        for (col, cell) in row.iter().enumerate() {
            let (r, col) = (r as u32 + 1, col as u16);
            match cell {
                Cell::Text(t) => sheet.write_string(r, col, t)?,
                Cell::Count(n) => sheet.write_number(r, col, *n as f64)?,
            };
        }
    }
    book.save_to_buffer()
}

/// `GET /downloads/{file}`: `districts.csv` or `districts.xlsx`.
pub async fn download(
    State(s): State<AppState>,
    _visitor: Visitor,
    Path(file): Path<String>,
) -> Result<Response, Problem> {
    let (body, kind) = match file.as_str() {
        "districts.csv" => (csv(&rows(&s).await?)?, "text/csv; charset=utf-8"),
        "districts.xlsx" => (
            xlsx(&rows(&s).await?).map_err(|e| {
                Problem::new(
                    coord_proto::ErrorKind::Internal,
                    "xlsx_failed",
                    e.to_string(),
                )
            })?,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        _ => {
            return Err(Problem::new(
                coord_proto::ErrorKind::NotFound,
                "no_such_download",
                format!("no download `{file}`"),
            ));
        }
    };
    let disposition = format!("attachment; filename=\"{file}\"");
    Ok((
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}
