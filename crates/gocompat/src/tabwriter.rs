//! Go's `text/tabwriter` as docker/cli sets it up, and the simple aligned tables built on it.

/// Go's `text/tabwriter` as the docker CLI sets it up (`NewWriter(out, 10, 1, 3, ' ', 0)`) applied
/// to `text`: cells are tab-terminated, the text after a line's last tab is not part of a column;
/// a column block is a run of consecutive lines that have that column, its width the widest cell
/// (in characters) plus `padding`, at least `min_width`; every cell of a block is padded with
/// spaces to that width, empty cells and trailing ones included.
pub fn tabwrite(text: &str, min_width: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text
        .split('\n')
        .map(|line| line.split('\t').collect())
        .collect();
    let mut writer = TabWriter {
        lines: &lines,
        min_width,
        padding,
        widths: Vec::new(),
        out: String::with_capacity(text.len() * 2),
    };
    writer.format(0, lines.len());
    writer.out
}

/// The state of one [`tabwrite`] run (Go's `tabwriter.Writer.format` and `writeLines`).
struct TabWriter<'a> {
    lines: &'a [Vec<&'a str>],
    min_width: usize,
    padding: usize,
    /// The widths of the columns of the enclosing blocks, leftmost first.
    widths: Vec<usize>,
    out: String,
}

impl TabWriter<'_> {
    fn format(&mut self, mut line0: usize, line1: usize) {
        let column = self.widths.len();
        let mut this = line0;
        while this < line1 {
            // The last cell of a line is not tab-terminated and belongs to no column.
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            self.write_lines(line0, this);
            line0 = this;
            let mut width = self.min_width;
            while this < line1 && column + 1 < self.lines[this].len() {
                width = width.max(self.lines[this][column].chars().count() + self.padding);
                this += 1;
            }
            self.widths.push(width);
            self.format(line0, this);
            self.widths.pop();
            line0 = this;
        }
        self.write_lines(line0, line1);
    }

    fn write_lines(&mut self, line0: usize, line1: usize) {
        for idx in line0..line1 {
            let line = &self.lines[idx];
            for (column, cell) in line.iter().enumerate() {
                self.out.push_str(cell);
                if let Some(width) = self.widths.get(column) {
                    let n_pad = width.saturating_sub(cell.chars().count());
                    self.out.extend(std::iter::repeat_n(' ', n_pad));
                }
            }
            // The text after the last newline has none of its own.
            if idx + 1 < self.lines.len() {
                self.out.push('\n');
            }
        }
    }
}

/// The docker CLI's tabwriter settings: a column is as wide as its widest cell plus 3 spaces, and
/// at least 10 (docker/cli `formatter` uses `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`).
pub const TABLE_MIN_WIDTH: usize = 10;
/// See [`TABLE_MIN_WIDTH`].
pub const TABLE_PADDING: usize = 3;

/// Rows aligned by [`tabwrite`] with the docker CLI's settings, every cell but the last of a row
/// tab-terminated, each row ending in a newline; spaces at the end of a line (after an empty last
/// cell) removed.
pub fn table(rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    for line in table_untrimmed(rows).lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// [`table`] with the lines as the tabwriter wrote them, padding after an empty last cell kept.
pub fn table_untrimmed(rows: &[Vec<String>]) -> String {
    let mut text = String::new();
    for row in rows {
        text.push_str(&row.join("\t"));
        text.push('\n');
    }
    tabwrite(&text, TABLE_MIN_WIDTH, TABLE_PADDING)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabwrite_pads_column_blocks_like_go() {
        // "longer cell" (11 characters) makes the first column 14 wide; a line without a tab ends
        // the block, so the columns after it are sized on their own (at least 10).
        let text = "a\tbb\tc\nlonger cell\td\te\nno tabs here\nx\ty\n";
        assert_eq!(
            tabwrite(text, 10, 3),
            "a             bb        c\nlonger cell   d         e\nno tabs here\nx         y\n"
        );
        // Empty cells are padded; the text after the last tab is not.
        assert_eq!(tabwrite("\tz\n", 2, 1), "  z\n");
    }

    #[test]
    fn table_pads_three_spaces() {
        let rows = vec![
            vec!["A".into(), "BB".into()],
            vec!["CCC".into(), "D".into()],
        ];
        // Docker's minimum column width of 10 applies before the 3 spaces of padding.
        assert_eq!(table(&rows), "A         BB\nCCC       D\n");
        let rows = vec![
            vec!["TYPE".into(), "SIZE".into(), "".into()],
            vec!["Images".into(), "1.982MB".into(), "x".into()],
        ];
        assert_eq!(table(&rows), "TYPE      SIZE\nImages    1.982MB   x\n");
        assert_eq!(
            table_untrimmed(&rows),
            "TYPE      SIZE      \nImages    1.982MB   x\n"
        );
    }
}
