/// Terminal columns a string takes: East Asian wide and fullwidth characters
/// take two, combining marks and zero-width characters none.
func displayWidth(_ text: String) -> Int {
    var width = 0
    for scalar in text.unicodeScalars {
        width += scalarWidth(scalar.value)
    }
    return width
}

func scalarWidth(_ v: UInt32) -> Int {
    switch v {
    case 0, 0x200B...0x200F, 0x2028...0x202E, 0x2060...0x2064, 0xFE00...0xFE0F, 0xFEFF: return 0
    case 0x0300...0x036F, 0x0483...0x0489, 0x0591...0x05BD, 0x0610...0x061A, 0x064B...0x065F, 0x1AB0...0x1AFF,
        0x1DC0...0x1DFF, 0x20D0...0x20FF, 0xFE20...0xFE2F, 0xE0100...0xE01EF:
        return 0
    case 0x1100...0x115F, 0x231A...0x231B, 0x2329...0x232A, 0x23E9...0x23EC, 0x23F0, 0x23F3, 0x25FD...0x25FE,
        0x2614...0x2615, 0x2648...0x2653, 0x267F, 0x2693, 0x26A1, 0x26AA...0x26AB, 0x26BD...0x26BE, 0x26C4...0x26C5,
        0x26CE, 0x26D4, 0x26EA, 0x26F2...0x26F3, 0x26F5, 0x26FA, 0x26FD, 0x2705, 0x270A...0x270B, 0x2728, 0x274C,
        0x274E, 0x2753...0x2755, 0x2757, 0x2795...0x2797, 0x27B0, 0x27BF, 0x2B1B...0x2B1C, 0x2B50, 0x2B55,
        0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF, 0x4E00...0x9FFF, 0xA000...0xA4CF, 0xA960...0xA97F,
        0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE10...0xFE19, 0xFE30...0xFE6F, 0xFF00...0xFF60, 0xFFE0...0xFFE6,
        0x1F300...0x1F64F, 0x1F900...0x1F9FF, 0x20000...0x2FFFD, 0x30000...0x3FFFD:
        return 2
    default:
        return v < 0x20 || (0x7F..<0xA0).contains(v) ? 0 : 1
    }
}

/// Pads `text` with spaces to `width` terminal columns.
func pad(_ text: String, to width: Int) -> String {
    text + String(repeating: " ", count: max(0, width - displayWidth(text)))
}

/// Cuts `text` to at most `width` columns, marking the cut with an ellipsis.
func truncate(_ text: String, to width: Int) -> String {
    guard displayWidth(text) > width else { return text }
    var out = ""
    var used = 0
    for character in text {
        let w = displayWidth(String(character))
        if used + w > width - 1 { break }
        out.append(character)
        used += w
    }
    return out + "…"
}

/// A table for the terminal: columns aligned by display width, a rule under the header.
struct TextTable {
    var header: [String]
    var rows: [[String]] = []
    var maxColumnWidth = 40

    init(_ header: [String]) { self.header = header }

    mutating func append(_ row: [String]) { rows.append(row) }

    /// The table as lines, each starting with `indent` spaces.
    func render(indent: Int = 0) -> String {
        let cells = ([header] + rows).map { row in
            row.map { truncate($0.replacingNewlines(), to: maxColumnWidth) }
        }
        var widths = [Int](repeating: 0, count: header.count)
        for row in cells {
            for (n, cell) in row.enumerated() { widths[n] = max(widths[n], displayWidth(cell)) }
        }
        func line(_ row: [String]) -> String {
            let text = row.enumerated().map { n, cell in n == row.count - 1 ? cell : pad(cell, to: widths[n]) }
                .joined(separator: "  ")
            return String(text.reversed().drop(while: { $0 == " " }).reversed())
        }
        var out = [line(cells[0]), widths.map { String(repeating: "─", count: $0) }.joined(separator: "  ")]
        out += cells.dropFirst().map(line)
        let margin = String(repeating: " ", count: indent)
        return out.map { margin + $0 }.joined(separator: "\n")
    }
}

extension String {
    func replacingNewlines() -> String {
        String(map { $0 == "\n" || $0 == "\r" || $0 == "\t" ? " " : $0 })
    }
}
