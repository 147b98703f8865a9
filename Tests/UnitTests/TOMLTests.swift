import AgentConfig
import Runtime
import TestSupport
import Testing

/// The TOML reader behind agent.conf: the forms TOML 1.0 allows, and a line and column for
/// what it does not.
@Suite struct TOMLTests {
    @Test func everyKindOfValue() throws {
        let document = try TOML.parse(
            #"""
            # a comment
            title = "TOML \"basic\" \u00e9\U0001F600 \t end" # trailing comment
            literal = 'C:\Users\nodejs\templates'
            multi = """
            Roses are red
            Violets are \
               blue"""
            multiLiteral = '''
            The first newline is
            trimmed in raw strings.'''
            quotes = """Here are two quotation marks: "". Simple enough.""""
            "quoted key" = 1
            'literal key' = 2
            bare-key_1 = 3
            dotted . key = "dotted"
            hex = 0xDEAD_beef
            oct = 0o755
            bin = 0b1101
            signed = -17
            plus = +99
            big = 9_223_372_036_854_775_807
            small = -9223372036854775808
            float = 6.626e-34
            float2 = -0.01
            float3 = 1e06
            float4 = 224_617.445_991_228
            infinity = -inf
            notANumber = nan
            yes = true
            no = false
            odt = 1979-05-27T07:32:00Z
            odt2 = 1979-05-27 00:32:00.999999-07:00
            ldate = 1979-05-27
            ltime = 07:32:00
            array = [ 1, 2, 3, ]
            nested = [ [ 1, 2 ], ["a", 'b'], { x = 1 } ]
            multiline = [
              "a", # comment inside
              "b"
            ]
            inline = { name = "x", point.x = 1, point.y = 2 }

            [table.sub]
            key = "in a sub-table"

            [table]
            defined = "later, once"

            [[products]]
            name = "Hammer"

            [[products]]

            [[products]]
            name = "Nail"
            sizes.small = 1
            """#)
        #expect(document["title"] == .string("TOML \"basic\" é😀 \t end"))
        #expect(document["literal"] == .string(#"C:\Users\nodejs\templates"#))
        #expect(document["multi"] == .string("Roses are red\nViolets are blue"))
        #expect(document["multiLiteral"] == .string("The first newline is\ntrimmed in raw strings."))
        #expect(document["quotes"] == .string(#"Here are two quotation marks: "". Simple enough.""#))
        #expect(document["quoted key"] == .integer(1) && document["literal key"] == .integer(2) && document["bare-key_1"] == .integer(3))
        #expect(document["dotted"] == .table(["key": .string("dotted")]))
        #expect(document["hex"] == .integer(0xDEAD_BEEF) && document["oct"] == .integer(0o755) && document["bin"] == .integer(13))
        #expect(document["signed"] == .integer(-17) && document["plus"] == .integer(99))
        #expect(document["big"] == .integer(Int.max) && document["small"] == .integer(Int.min))
        #expect(document["float"] == .float(6.626e-34) && document["float2"] == .float(-0.01) && document["float3"] == .float(1e6))
        #expect(document["float4"] == .float(224_617.445_991_228) && document["infinity"] == .float(-.infinity))
        #expect(document["notANumber"]?.float?.isNaN == true)
        #expect(document["yes"] == .boolean(true) && document["no"] == .boolean(false))
        #expect(document["odt"] == .dateTime("1979-05-27T07:32:00Z") && document["odt2"] == .dateTime("1979-05-27 00:32:00.999999-07:00"))
        #expect(document["ldate"] == .dateTime("1979-05-27") && document["ltime"] == .dateTime("07:32:00"))
        #expect(document["array"] == .array([.integer(1), .integer(2), .integer(3)]))
        #expect(document["nested"] == .array([.array([.integer(1), .integer(2)]), .array([.string("a"), .string("b")]), .table(["x": .integer(1)])]))
        #expect(document["multiline"] == .array([.string("a"), .string("b")]))
        #expect(document["inline"] == .table(["name": .string("x"), "point": .table(["x": .integer(1), "y": .integer(2)])]))
        #expect(document["table"] == .table(["sub": .table(["key": .string("in a sub-table")]), "defined": .string("later, once")]))
        #expect(
            document["products"]
                == .array([
                    .table(["name": .string("Hammer")]), .table([:]),
                    .table(["name": .string("Nail"), "sizes": .table(["small": .integer(1)])]),
                ]))
    }

    @Test func crlfLinesAndAnEmptyDocument() throws {
        #expect(try TOML.parse("") == [:])
        #expect(try TOML.parse("a = 1\r\n[b]\r\nc = \"x\"\r\n") == ["a": .integer(1), "b": .table(["c": .string("x")])])
    }

    @Test(arguments: [
        ("a = 1\na = 2", 2, "already defined"),
        ("[t]\n[t]", 2, "already defined"),
        ("a.b = 1\n[a]", 2, "already defined"),
        ("[a.b]\nx = 1\n[a]\nb.y = 2", 4, "cannot be extended"),
        ("i = { x = 1 }\n[i]", 2, "already defined"),
        ("i = { x = 1 }\ni.y = 2", 2, "cannot be extended"),
        ("s = [1]\n[[s]]", 2, "not an array of tables"),
        ("n = 012", 1, "not a TOML value"),
        ("n = 1__0", 1, "not a TOML value"),
        ("n = _1", 1, "not a TOML value"),
        ("n = 9223372036854775808", 1, "not a TOML value"),
        ("n = 1.", 1, "not a TOML value"),
        ("n = .5", 1, "not a TOML value"),
        ("n = -0x10", 1, "not a TOML value"),
        ("d = 1979-13-27", 1, "not a TOML value"),
        ("s = \"open", 1, "unterminated"),
        ("s = \"a\nb\"", 1, "newline in a single-line string"),
        ("s = \"\\q\"", 1, "invalid escape"),
        ("s = \"\\uD800\"", 1, "invalid \\u escape"),
        ("a = 1 b = 2", 1, "end of a line"),
        ("= 1", 1, "expected a key"),
        ("a 1", 1, "expected ="),
        ("a = [1 2]", 1, "expected , or ]"),
        ("a = { x = 1,\n y = 2 }", 1, "expected a key"),
        ("[a\nb = 1", 1, "expected ]"),
        ("a = 1 # bell \u{07}", 1, "control character"),
        ("a =", 1, "expected a value"),
    ])
    func badDocumentsSayWhereAndWhy(text: String, line: Int, message: String) {
        do {
            _ = try TOML.parse(text)
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.line == line && error.message.contains(message), "\(text.debugDescription): \(error)")
        }
    }

    @Test func theShippedConfigurationReadsAsTheDefaults() throws {
        let document = try TOML.parse(try #require(readTextFile(Repo.path("agent.conf"))))
        #expect(document["agent"]?.table?["user"] == .string("_xferwatch"))
        #expect(document["detection"]?.table?["command_line_patterns"]?.array?.count == 4)
        #expect(document["network"]?.table?["trusted_networks"]?.array?.contains(.string("fc00::/7")) == true)
    }
}
