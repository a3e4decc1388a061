//! Tables for a terminal, as `kubectl get` and `helm history` print them: no borders,
//! columns separated by two spaces, headers in capitals, no trailing spaces, never wrapped
//! (a command in a cell must stay copyable).

use comfy_table::{CellAlignment, ContentArrangement, Table, presets};

/// Renders `rows` under `header`.
pub fn render<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    for row in rows {
        table.add_row(row.iter().map(String::as_str));
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
        column.set_cell_alignment(CellAlignment::Left);
    }
    let mut out = String::new();
    for line in table.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_two_spaces_apart_without_trailing_space() {
        let rows = [
            [
                "rollout:Deployment/gim".to_string(),
                "pass".to_string(),
                String::new(),
            ],
            [
                "lag".to_string(),
                "pending".to_string(),
                "judged later".to_string(),
            ],
        ];
        let text = render(["CHECK", "RESULT", "DETAILS"], &rows);
        assert_eq!(
            text,
            "CHECK                   RESULT   DETAILS\n\
             rollout:Deployment/gim  pass\n\
             lag                     pending  judged later\n"
        );
    }
}
