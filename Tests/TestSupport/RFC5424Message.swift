/// An RFC 5424 message with our structured data, parsed strictly.
public struct RFC5424Message {
    public let priority: Int
    public let timestamp: String
    public let hostname, appName, procID, msgID, structuredData, body, eventID: String

    public init?(_ line: String) {
        let pattern =
            #/^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) ([!-~]{1,255}) ([!-~]{1,48}) ([!-~]{1,128}) ([!-~]{1,32}) (\[xferwatch@32473(?: [a-z]+="(?:[^"\\\]]|\\["\\\]])*")+\]) (.*)$/#
        guard let match = line.wholeMatch(of: pattern), let event = line.firstMatch(of: #/ event="([^"]+)"/#) else { return nil }
        priority = Int(match.1)!
        timestamp = String(match.2)
        (hostname, appName, procID, msgID) = (String(match.3), String(match.4), String(match.5), String(match.6))
        structuredData = String(match.7)
        body = String(match.8)
        eventID = String(event.1)
    }
}
