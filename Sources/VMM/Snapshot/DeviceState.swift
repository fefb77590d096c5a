/// The host side of one virtqueue: the driver's configuration and the device's
/// ring positions (the rings themselves are in guest RAM).
public struct QueueState: Sendable, Equatable {
    public var size: UInt16
    public var ready: Bool
    public var descriptorTable: UInt64
    public var availableRing: UInt64
    public var usedRing: UInt64
    public var nextAvailable: UInt16
    public var nextUsed: UInt16
}

/// A virtio-mmio transport's registers as the driver left them.
public struct TransportState: Sendable, Equatable {
    public var deviceFeaturesSelect: UInt32
    public var driverFeaturesSelect: UInt32
    public var driverFeatures: UInt64
    public var queueSelect: UInt32
    public var status: UInt32
    public var interruptStatus: UInt32
    public var configGeneration: UInt32
    public var failed: Bool
    public var interruptPending: Bool
    public var queues: [QueueState]
}

/// One virtio device slot: what was there (checked on restore: the restored
/// machine must have the same device in the same slot), its transport and the
/// device's own state (encoded by the device, see `VirtioDevice.captureState`).
public struct DeviceSnapshot: Sendable, Equatable {
    public var name: String
    public var deviceType: UInt32
    public var transport: TransportState
    public var device: [UInt8]
}

/// Every virtio device of a machine, in slot order.
public struct DeviceStates: Sendable, Equatable {
    public var devices: [DeviceSnapshot] = []
    public init(devices: [DeviceSnapshot] = []) { self.devices = devices }

    static let maximumDevices = 64
    static let maximumQueues = 64
    static let maximumNameBytes = 256
    static let maximumDeviceBytes = 512 << 10

    func encode(into writer: inout SnapshotWriter) {
        writer.u32(UInt32(devices.count))
        for device in devices {
            writer.blob(Array(device.name.utf8))
            writer.u32(device.deviceType)
            let t = device.transport
            writer.u32(t.deviceFeaturesSelect)
            writer.u32(t.driverFeaturesSelect)
            writer.u64(t.driverFeatures)
            writer.u32(t.queueSelect)
            writer.u32(t.status)
            writer.u32(t.interruptStatus)
            writer.u32(t.configGeneration)
            writer.u8(t.failed ? 1 : 0)
            writer.u8(t.interruptPending ? 1 : 0)
            writer.u32(UInt32(t.queues.count))
            for q in t.queues {
                writer.u32(UInt32(q.size))
                writer.u8(q.ready ? 1 : 0)
                writer.u64(q.descriptorTable)
                writer.u64(q.availableRing)
                writer.u64(q.usedRing)
                writer.u32(UInt32(q.nextAvailable))
                writer.u32(UInt32(q.nextUsed))
            }
            writer.blob(device.device)
        }
    }

    static func decode(from reader: inout SnapshotReader) throws(SnapshotError) -> DeviceStates {
        var devices: [DeviceSnapshot] = []
        for _ in 0..<(try reader.count(maximum: maximumDevices, of: "devices")) {
            let name = String(decoding: try reader.blob(maximum: maximumNameBytes, of: "device name"), as: UTF8.self)
            let deviceType = try reader.u32()
            let deviceFeaturesSelect = try reader.u32()
            let driverFeaturesSelect = try reader.u32()
            let driverFeatures = try reader.u64()
            let queueSelect = try reader.u32()
            let status = try reader.u32()
            let interruptStatus = try reader.u32()
            let configGeneration = try reader.u32()
            let failed = try reader.flag("\(name): failed")
            let interruptPending = try reader.flag("\(name): interrupt pending")
            var queues: [QueueState] = []
            for _ in 0..<(try reader.count(maximum: maximumQueues, of: "queues of \(name)")) {
                let size = try reader.u16(in: "\(name): queue size")
                let ready = try reader.flag("\(name): queue ready")
                let descriptorTable = try reader.u64(), availableRing = try reader.u64(), usedRing = try reader.u64()
                let nextAvailable = try reader.u16(in: "\(name): next available index")
                let nextUsed = try reader.u16(in: "\(name): next used index")
                queues.append(QueueState(size: size, ready: ready, descriptorTable: descriptorTable, availableRing: availableRing,
                                         usedRing: usedRing, nextAvailable: nextAvailable, nextUsed: nextUsed))
            }
            let device = try reader.blob(maximum: maximumDeviceBytes, of: "\(name) device state")
            let transport = TransportState(
                deviceFeaturesSelect: deviceFeaturesSelect, driverFeaturesSelect: driverFeaturesSelect,
                driverFeatures: driverFeatures, queueSelect: queueSelect, status: status, interruptStatus: interruptStatus,
                configGeneration: configGeneration, failed: failed, interruptPending: interruptPending, queues: queues)
            devices.append(DeviceSnapshot(name: name, deviceType: deviceType, transport: transport, device: device))
        }
        return DeviceStates(devices: devices)
    }
}

extension SnapshotReader {
    /// A 0/1 byte.
    mutating func flag(_ name: String) throws(SnapshotError) -> Bool {
        switch try u8() {
        case 0: return false
        case 1: return true
        case let value: throw .malformed("\(what): \(name) flag \(value)")
        }
    }

    /// A u32 that must fit 16 bits.
    mutating func u16(in name: String) throws(SnapshotError) -> UInt16 {
        let value = try u32()
        guard let narrow = UInt16(exactly: value) else { throw .malformed("\(what): \(name) \(value) exceeds 16 bits") }
        return narrow
    }

    /// A length-prefixed UTF-8 string of at most `maximum` bytes.
    mutating func string(maximum: Int, of name: String) throws(SnapshotError) -> String {
        let bytes = try blob(maximum: maximum, of: name)
        guard let text = String(validating: bytes, as: UTF8.self) else { throw .malformed("\(what): \(name) is not UTF-8") }
        return text
    }
}
