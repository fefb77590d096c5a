import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import VMM

extension FuseTests {
    /// The request parser on malformed and hostile input: every case ends in an error
    /// reply or a dropped chain, never a crash.
    @Suite struct ParserTests {
        let parser = FuseParser()

        func parse(_ bytes: [UInt8], arrived: Int? = nil) -> FuseParseResult {
            parser.parse(bytes, arrivedLength: arrived ?? bytes.count)
        }

        /// The errno of a refused message, or nil if it was not refused.
        func refusal(_ bytes: [UInt8], arrived: Int? = nil) -> Int32? {
            if case let .refused(_, error) = parse(bytes, arrived: arrived) { return error.errno }
            return nil
        }

        func operation(_ bytes: [UInt8]) -> FuseOperation? {
            if case let .request(request) = parse(bytes) { return request.operation }
            return nil
        }

        @Test(arguments: [0, 1, 16, 39])
        func aShortHeaderIsUnreadable(length: Int) {
            let bytes = Array(fuseMessage(.lookup, FuseArgs.build { $0.name("x") }).prefix(length))
            guard case .unreadable(let reason) = parse(bytes) else {
                Issue.record("a \(length)-byte message was not dropped")
                return
            }
            #expect(reason.contains("shorter than fuse_in_header"))
        }

        @Test func aWellFormedHeaderIsDecoded() throws {
            let bytes = fuseMessage(.getattr, node: 9, unique: 77, uid: 1000, gid: 100, FuseArgs.build { $0.zeros(16) })
            guard case let .request(request) = parse(bytes) else { throw FuseTestFailure(description: "not parsed") }
            #expect(request.header == FuseInHeader(length: 56, opcode: .getattr, unique: 77, nodeid: 9,
                                                   uid: 1000, gid: 100, pid: 4242, totalExtensionLength: 0))
            #expect(request.operation == .getattr(fh: nil))
        }

        @Test func aLengthThatDoesNotMatchWhatArrivedIsRefused() {
            let bytes = fuseMessage(.lookup, FuseArgs.build { $0.name("file") })
            #expect(refusal(bytes, arrived: bytes.count + 8) == EINVAL)       // more arrived than the header says
            #expect(refusal(fuseMessage(.lookup, length: 40, FuseArgs.build { $0.name("file") })) == EINVAL)
        }

        @Test func aLengthBeyondTheBytesIsRefused() {
            // The header claims 4 KiB, but only the bytes of a short message were copied.
            let bytes = fuseMessage(.lookup, length: 4096, FuseArgs.build { $0.name("file") })
            #expect(refusal(bytes, arrived: 4096) == EINVAL)
        }

        @Test func aLengthShorterThanTheHeaderIsRefused() {
            #expect(refusal(fuseMessage(.statfs, length: 12), arrived: 12) == EINVAL)
            #expect(refusal(fuseMessage(.statfs, length: 12)) == EINVAL)
        }

        @Test func anOversizedMessageIsRefusedWithE2BIG() {
            let huge = UInt32(parser.limits.maxRequest + 1)
            let bytes = fuseMessage(.write, length: huge, [UInt8](repeating: 0, count: 64))
            #expect(refusal(bytes, arrived: Int(huge)) == E2BIG)
        }

        @Test func extensionsLongerThanTheMessageAreRefused() {
            #expect(refusal(fuseMessage(.lookup, extensionWords: 2, FuseArgs.build { $0.name("ab") })) == EINVAL)
            // Well-formed extensions are skipped.
            let withExtension = fuseMessage(.lookup, extensionWords: 1, FuseArgs.build { $0.name("ab"); $0.zeros(5); $0.zeros(8) })
            #expect(operation(withExtension) == .lookup(FuseName("ab")!))
        }

        @Test func aNameWithoutItsNULIsRefused() {
            #expect(refusal(fuseMessage(.lookup, Array("no-terminator".utf8))) == EINVAL)
            #expect(refusal(fuseMessage(.mkdir, FuseArgs.build { $0.u32(0o755); $0.u32(0); $0.raw(Array("dir".utf8)) })) == EINVAL)
            // SYMLINK: the target's NUL is missing.
            #expect(refusal(fuseMessage(.symlink, FuseArgs.build { $0.name("l"); $0.raw(Array("/etc".utf8)) })) == EINVAL)
            // RENAME: the second name's NUL is missing.
            #expect(refusal(fuseMessage(.rename, FuseArgs.build { $0.u64(1); $0.name("a"); $0.raw([0x62]) })) == EINVAL)
        }

        @Test(arguments: ["a/b", "../secret", "/", "x/"])
        func aNameWithASlashIsRefused(name: String) {
            #expect(refusal(fuseMessage(.lookup, FuseArgs.build { $0.name(name) })) == EINVAL)
            #expect(refusal(fuseMessage(.create, FuseArgs.build { $0.zeros(16); $0.name(name) })) == EINVAL)
            #expect(refusal(fuseMessage(.rename2, FuseArgs.build { $0.u64(1); $0.zeros(8); $0.name("ok"); $0.name(name) })) == EINVAL)
        }

        @Test func anEmptyNameIsRefused() {
            #expect(refusal(fuseMessage(.lookup, [0])) == EINVAL)
            #expect(refusal(fuseMessage(.unlink, [])) == EINVAL)
        }

        @Test func overlongNamesAndTargetsAreRefused() {
            let long = String(repeating: "n", count: 256)
            #expect(refusal(fuseMessage(.lookup, FuseArgs.build { $0.name(long) })) == ENAMETOOLONG)
            #expect(operation(fuseMessage(.lookup, FuseArgs.build { $0.name(String(long.dropFirst())) })) != nil)
            let target = String(repeating: "t", count: 4096)
            #expect(refusal(fuseMessage(.symlink, FuseArgs.build { $0.name("l"); $0.name(target) })) == ENAMETOOLONG)
            #expect(refusal(fuseMessage(.getxattr, FuseArgs.build { $0.u32(0); $0.u32(0); $0.name("user." + long) })) == ERANGE)
        }

        @Test func anOversizedWriteIsRefused() {
            // The size field claims 2 MiB in a small message.
            let claims = fuseMessage(.write, FuseArgs.build { a in
                a.u64(1); a.u64(0); a.u32(2 << 20); a.u32(0); a.u64(0); a.u32(0); a.u32(0); a.raw([1, 2, 3])
            })
            #expect(refusal(claims) == E2BIG)
            // A size that disagrees with the data that follows.
            let short = fuseMessage(.write, FuseArgs.build { a in
                a.u64(1); a.u64(0); a.u32(10); a.u32(0); a.u64(0); a.u32(0); a.u32(0); a.raw([1, 2, 3])
            })
            #expect(refusal(short) == EINVAL)
            // A read larger than the limit.
            #expect(refusal(fuseMessage(.read, FuseArgs.build { a in a.u64(1); a.u64(0); a.u32(UInt32.max); a.zeros(20) })) == E2BIG)
        }

        @Test func aWriteCarriesItsData() {
            let bytes = fuseMessage(.write, FuseArgs.build { a in
                a.u64(5); a.u64(100); a.u32(3); a.u32(0); a.u64(0); a.u32(0); a.u32(0); a.raw([7, 8, 9])
            })
            guard case let .write(fh, offset, data)? = operation(bytes) else {
                Issue.record("not a write")
                return
            }
            #expect(fh == 5 && offset == 100 && Array(data) == [7, 8, 9])
        }

        @Test(arguments: [FuseOpcode.read, .write, .setattr, .getattr, .open, .create, .mknod, .initialize, .release,
                          .fsync, .lseek, .fallocate, .batchForget, .forget, .link, .rename2, .setxattr, .access, .syncfs])
        func truncatedArgumentStructuresAreRefused(opcode: FuseOpcode) {
            #expect(refusal(fuseMessage(opcode, [1, 2, 3, 4])) == EINVAL)
        }

        @Test func unknownOpcodesSurviveAsUnsupported() {
            #expect(operation(fuseMessage(FuseOpcode(rawValue: 9999), [1, 2, 3])) == .unsupported(FuseOpcode(rawValue: 9999)))
            #expect(operation(fuseMessage(.getlk, [])) == .unsupported(.getlk))
            #expect(FuseOpcode(rawValue: 9999).description == "FUSE_opcode 9999")
        }

        @Test func batchForgetCountsAreChecked() {
            let entries = FuseArgs.build { a in a.u32(2); a.u32(0); a.u64(5); a.u64(1); a.u64(6); a.u64(2) }
            #expect(operation(fuseMessage(.batchForget, entries)) == .batchForget([.init(nodeid: 5, count: 1), .init(nodeid: 6, count: 2)]))
            let lying = FuseArgs.build { a in a.u32(3); a.u32(0); a.u64(5); a.u64(1) }
            #expect(refusal(fuseMessage(.batchForget, lying)) == EINVAL)
            let huge = FuseArgs.build { a in a.u32(UInt32.max); a.u32(0) }
            #expect(refusal(fuseMessage(.batchForget, huge)) == E2BIG)
        }

        @Test func xattrValuesAreBounded() {
            let value = [UInt8](repeating: 1, count: 4)
            let good = fuseMessage(.setxattr, FuseArgs.build { a in a.u32(4); a.u32(0); a.name("user.a"); a.raw(value) })
            #expect(operation(good) == .setxattr(name: Array("user.a".utf8), value: value[...], flags: 0))
            let lying = fuseMessage(.setxattr, FuseArgs.build { a in a.u32(400); a.u32(0); a.name("user.a"); a.raw(value) })
            #expect(refusal(lying) == EINVAL)
            let big = fuseMessage(.setxattr, FuseArgs.build { a in a.u32(1 << 20); a.u32(0); a.name("user.a") })
            #expect(refusal(big) == E2BIG)
        }

        /// Random bytes and random mutations of valid messages: the parser always
        /// answers one of its three outcomes (a crash would end the test run).
        @Test func randomInputNeverCrashes() {
            var rng = SplitMix64(seed: 0x5eed)
            let seeds: [[UInt8]] = [
                fuseMessage(.lookup, FuseArgs.build { $0.name("file") }),
                fuseMessage(.write, FuseArgs.build { a in a.u64(1); a.u64(0); a.u32(3); a.zeros(20); a.raw([1, 2, 3]) }),
                fuseMessage(.batchForget, FuseArgs.build { a in a.u32(1); a.u32(0); a.u64(5); a.u64(1) }),
                fuseMessage(.rename2, FuseArgs.build { a in a.u64(1); a.zeros(8); a.name("a"); a.name("b") }),
                fuseMessage(.setxattr, FuseArgs.build { a in a.u32(1); a.u32(0); a.name("user.x"); a.raw([1]) }),
            ]
            var outcomes = [0, 0, 0]
            for i in 0..<20_000 {
                var bytes: [UInt8]
                if i % 4 == 0 {
                    bytes = (0..<Int(rng.next() % 200)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                } else {
                    bytes = seeds[Int(rng.next() % UInt64(seeds.count))]
                    for _ in 0..<(1 + rng.next() % 4) where !bytes.isEmpty {
                        bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                    }
                    if rng.next() % 3 == 0 { bytes.removeLast(Int(rng.next() % UInt64(bytes.count))) }
                }
                switch parse(bytes) {
                case .request: outcomes[0] += 1
                case .refused: outcomes[1] += 1
                case .unreadable: outcomes[2] += 1
                }
            }
            #expect(outcomes.allSatisfy { $0 > 0 })
        }
    }
}

/// A small deterministic generator for the fuzz tests.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
