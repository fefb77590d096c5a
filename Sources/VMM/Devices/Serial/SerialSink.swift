import Synchronization

/// The transmit half of a 16550 UART at 0x3f8, enough for the kernel's
/// `earlyprintk=serial` (which polls LSR and writes THR without the 8250 driver).
/// Debug-only: every byte costs a VM exit; the normal console is virtio-console.
public final class SerialSink: BusDevice {
    public static let base: UInt64 = 0x3f8
    public static let size: UInt64 = 8
    private let output: @Sendable (UInt8) -> Void
    private let lineControl = Mutex<UInt8>(0)

    public init(output: @escaping @Sendable (UInt8) -> Void) {
        self.output = output
    }

    public func read(offset: UInt64, length: Int) -> UInt64 {
        switch offset {
        case 3: return UInt64(lineControl.withLock { $0 })
        case 5: return 0x60                       // LSR: transmitter empty, THR empty
        case 6: return 0xb0                       // MSR: DCD, DSR, CTS
        default: return 0
        }
    }

    public func write(offset: UInt64, length: Int, value: UInt64) {
        let byte = UInt8(truncatingIfNeeded: value)
        switch offset {
        case 0 where lineControl.withLock({ $0 }) & 0x80 == 0:
            output(byte)                          // THR (not the divisor latch)
        case 3:
            lineControl.withLock { $0 = byte }
        default:
            break                                 // IER, FCR, MCR, divisor: accepted, ignored
        }
    }
}
