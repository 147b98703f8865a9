import AuditIngest
import Detection
import Flows

/// Where the pipeline hands each assembled event.
protocol EventSink: AnyObject {
    func consume(_ event: AuditEvent)
}

/// What a caller of the graph hears of, as values: each event read, each alert delivered, each
/// finished flow (tests and tools; the live agent and replay write their outputs instead).
public protocol GraphObserver: AnyObject {
    func eventRead(_ event: AuditEvent)
    func alertDelivered(_ alert: Alert)
    func flowEnded(_ flow: Flow)
}

extension GraphObserver {
    public func eventRead(_ event: AuditEvent) {}
    public func alertDelivered(_ alert: Alert) {}
    public func flowEnded(_ flow: Flow) {}
}

/// Who follows each alert's JSON line as it is written (agentctl's recent alerts and followers).
protocol AlertFollower: AnyObject {
    func published(alertLine: [UInt8])
}

/// The end of an alert's way: the outputs, then the graph's observer.
final class AlertDelivery: AlertSink {
    private let outputs: AlertOutput
    private weak var observer: GraphObserver?

    init(outputs: AlertOutput, observer: GraphObserver?) {
        self.outputs = outputs
        self.observer = observer
    }

    func consume(_ alert: Alert) {
        outputs.consume(alert)
        observer?.alertDelivered(alert)
    }
}

/// The detector's alerts: through `AlertDigests` while binaries are hashed (live, once the
/// hashing thread runs), straight to the delivery otherwise.
final class AlertRoute: AlertSink {
    let delivery: AlertDelivery
    var digests: AlertDigests?

    init(delivery: AlertDelivery) { self.delivery = delivery }

    func consume(_ alert: Alert) {
        if let digests { digests.consume(alert) } else { delivery.consume(alert) }
    }
}

/// The YARA stage in use: none until scanning starts after the privilege drop, replaced or
/// stopped by a reload. The stages that feed it and the loop source that drains it share this.
final class ScanSlot {
    var stage: ScanStage? { didSet { replacements += 1 } }
    /// How many times the stage was set: the one before, and its results pipe, went.
    private(set) var replacements = 0
}
