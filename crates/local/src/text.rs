//! Text tables for the CLI's output (`list`, `replay`, `bench`, `chaos`), from
//! comfy-table: no borders, two spaces between columns, numbers right-aligned.

use comfy_table::{presets, CellAlignment, ContentArrangement, Table};

/// A table of `rows` under `header`; the columns in `right` are right-aligned.
pub fn table(header: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    for r in rows {
        t.add_row(r.clone());
    }
    for (i, column) in t.column_iter_mut().enumerate() {
        column.set_padding((0, 2));
        if right.contains(&i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = String::new();
    for line in t.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up_and_numbers_align_right() {
        let t = super::table(
            &["EVENT", "ATTEMPTS", "STATUS"],
            &[
                vec!["evt_1".into(), "3".into(), "synced".into()],
                vec!["evt_long_name".into(), "12".into(), "dead".into()],
            ],
            &[1],
        );
        assert_eq!(
            t,
            "EVENT          ATTEMPTS  STATUS\n\
             evt_1                 3  synced\n\
             evt_long_name        12  dead\n"
        );
    }
}
