/// The host side of the state machine: accepting host connections and their CONNECT
/// command, socket events, and moving replies and stream data into the guest's
/// receive buffers.
extension VirtioVsock {
    /// After any event or guest packet: end what is finished, tell the guest what it
    /// must know, fill receive buffers, and arm each socket for what it waits on.
    func service(_ queues: inout VirtioQueues) throws(Virtqueue.QueueError) {
        settle()
        try deliver(&queues)
        arm()
    }

    // MARK: - host connections

    func acceptHostConnections() {
        defer { rearmListener() }
        for _ in 0..<max(1, limits.maxPendingHostConnections) {
            let socket: OwnedDescriptor?
            do { socket = try VsockHostSocket.accept(listener, path: socketPath) } catch {
                log("vsock: \(error)")
                return
            }
            guard let socket else { return }
            // Over the limit, the socket is released here: the host process sees end-of-file.
            guard pendingHostConnections.count < limits.maxPendingHostConnections else { continue }
            let pending = PendingHostConnection(socket: socket, token: makeToken())
            do { try poller.add(socket, token: pending.token, events: VsockPoller.readable) } catch {
                log("vsock: \(error)")
                continue
            }
            pendingHostConnections[pending.token] = pending
        }
    }

    /// Reads the "CONNECT <port>\n" line without taking any byte after it: they are
    /// the stream's first bytes for the guest.
    func readConnectCommand(_ pending: PendingHostConnection) {
        var buffer = [UInt8](repeating: 0, count: Self.maxCommandLine - pending.line.count)
        let peeked = buffer.withUnsafeMutableBytes { VsockHostSocket.receive(pending.socket, into: $0, peek: true) }
        switch peeked {
        case .bytes(let n):
            let newline = buffer[0..<n].firstIndex(of: UInt8(ascii: "\n"))
            let take = newline.map { $0 + 1 } ?? n
            // The bytes were peeked, so this read returns exactly them.
            guard case .bytes(take) = buffer.withUnsafeMutableBytes({
                VsockHostSocket.receive(pending.socket, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<take]))
            }) else { return dropPending(pending) }
            pending.line += buffer[0..<take]
            if newline != nil {
                dropPending(pending)
                guard let port = Self.parseConnectCommand(pending.line) else { return }
                startHostConnection(pending.socket, guestPort: port)
            } else if pending.line.count >= Self.maxCommandLine {
                dropPending(pending)
            } else {
                rearm(pending)
            }
        case .wouldBlock:
            rearm(pending)
        case .endOfStream, .failed:
            dropPending(pending)
        }
    }

    private func rearm(_ pending: PendingHostConnection) {
        do { try poller.modify(pending.socket, token: pending.token, events: VsockPoller.readable) } catch {
            dropPending(pending)
        }
    }

    /// Forgets a pending connection; its socket closes unless a connection took it.
    private func dropPending(_ pending: PendingHostConnection) {
        pendingHostConnections[pending.token] = nil
        poller.remove(pending.socket)
    }

    /// "CONNECT <decimal port>\n" (a "\r" before the "\n" is allowed); nil otherwise.
    static func parseConnectCommand(_ line: [UInt8]) -> UInt32? {
        var text = line[...]
        guard text.last == UInt8(ascii: "\n") else { return nil }
        text = text.dropLast()
        if text.last == UInt8(ascii: "\r") { text = text.dropLast() }
        let prefix = Array("CONNECT ".utf8)
        guard text.starts(with: prefix) else { return nil }
        let digits = text.dropFirst(prefix.count)
        guard !digits.isEmpty, digits.count <= 10, digits.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        let value = digits.reduce(UInt64(0)) { $0 * 10 + UInt64($1 - 0x30) }
        return value <= UInt64(UInt32.max) ? UInt32(value) : nil
    }

    /// A host process asked for guest port `guestPort`: send the guest a REQUEST from a
    /// fresh host port. The socket is re-registered, disarmed but for hang-up, until
    /// the guest answers.
    func startHostConnection(_ socket: OwnedDescriptor, guestPort: UInt32) {
        guard connections.count < limits.maxConnections else {
            log("vsock: connection limit \(limits.maxConnections) reached: host connect to guest port \(guestPort) refused")
            return
        }
        guard let hostPort = allocateHostPort(guestPort: guestPort) else { return }
        let connection = VsockConnection(key: .init(guestPort: guestPort, hostPort: hostPort), socket: socket,
                                         token: makeToken(), state: .requestSent,
                                         bufAlloc: UInt32(limits.connectionBuffer))
        guard register(connection) else { return }
        replies.append(.connection(connection, .request, flags: 0))
    }

    private func allocateHostPort(guestPort: UInt32) -> UInt32? {
        for _ in 0..<(limits.maxConnections + 1) {
            let port = nextHostPort
            nextHostPort = nextHostPort == UInt32.max ? Self.firstHostPort : nextHostPort + 1
            if connections[.init(guestPort: guestPort, hostPort: port)] == nil { return port }
        }
        return nil
    }

    // MARK: - connection sockets

    func hostEvent(_ connection: VsockConnection, _ events: UInt32) {
        connection.armed = 0         // EPOLLONESHOT: the socket is disarmed now
        if connection.state == .requestSent {
            // Only hang-up is watched before the guest answers: the host process gave up.
            if events & VsockPoller.hangUp != 0 { abort(connection) }
            return
        }
        if events & (VsockPoller.readable | VsockPoller.hangUp) != 0 { connection.hostReadable = true }
        if events & (VsockPoller.writable | VsockPoller.hangUp) != 0 { _ = connection.flush() }
    }

    /// Ends broken and finished connections, half-closes host sockets the guest will
    /// not write to again, and queues the credit updates the guest needs.
    func settle() {
        for connection in Array(connections.values) {
            if connection.broken {
                abort(connection)
                continue
            }
            if connection.guestShutdown & VsockShutdown.send != 0, !connection.hasOutput, !connection.hostWriteClosed {
                VsockHostSocket.shutdownWrite(connection.socket)
                connection.hostWriteClosed = true
            }
            if connection.guestFinished {
                abort(connection)    // the RST the guest's close() waits for
            } else if connection.needsCreditUpdate(threshold: limits.creditUpdateThreshold) {
                queueCreditUpdate(connection)
            }
        }
    }

    /// Arms every connection socket for what it waits on (input it could pass to the
    /// guest and has not seen yet; room for output it holds).
    func arm() {
        for connection in Array(connections.values) {
            let events = connection.desiredEvents
            guard events != connection.armed else { continue }
            do {
                try poller.modify(connection.socket, token: connection.token, events: events)
                connection.armed = events
            } catch {
                log("vsock: \(connection.key): \(error)")
                abort(connection)
            }
        }
    }

    // MARK: - the receive queue

    /// Fills receive buffers: all queued replies first, then stream data, one packet
    /// per connection in turn, while buffers last.
    func deliver(_ queues: inout VirtioQueues) throws(Virtqueue.QueueError) {
        guard queues.isReady(Self.receiveQueue) else { return }
        while true {
            guard try deliverReplies(&queues) else { return }
            let ready = connections.values.filter(\.canSendToGuest)
            guard !ready.isEmpty else { return }
            for connection in ready where connections[connection.key] === connection && connection.canSendToGuest {
                guard try sendData(connection, &queues) else { return }
            }
        }
    }

    /// Sends every queued reply; false when receive buffers ran out first.
    private func deliverReplies(_ queues: inout VirtioQueues) throws(Virtqueue.QueueError) -> Bool {
        while let reply = replies.first {
            // Take the buffer first: making a connection's header tells the guest its credit.
            guard let chain = try queues.pop(Self.receiveQueue) else { return false }
            guard chain.writableLength >= VsockHeader.size else {
                // A buffer that cannot hold a header is returned unused; the reply waits.
                try queues.complete(Self.receiveQueue, chain, written: 0)
                continue
            }
            var header: VsockHeader
            switch reply {
            case .header(let finished):
                header = finished
            case let .connection(connection, op, flags):
                guard connections[connection.key] === connection else {
                    queues.unpop(Self.receiveQueue)
                    replies.removeFirst()         // the connection ended since
                    continue
                }
                header = connection.header(guestCID: guestCID, op, flags: flags)
                if op == .creditUpdate { connection.creditUpdateQueued = false }
            }
            header.length = 0
            let written: Int
            do { written = try chain.writeAll(header.bytes[...], queues.memory) } catch { throw .memory(error) }
            try queues.complete(Self.receiveQueue, chain, written: written)
            replies.removeFirst()
        }
        return true
    }

    /// Reads from `connection`'s socket into one receive buffer, as much as the
    /// buffer, the guest's credit and the packet limit allow. False when there are no
    /// receive buffers.
    private func sendData(_ connection: VsockConnection, _ queues: inout VirtioQueues) throws(Virtqueue.QueueError) -> Bool {
        guard let chain = try queues.pop(Self.receiveQueue) else { return false }
        let room = chain.writableLength - VsockHeader.size
        guard room > 0 else {
            try queues.complete(Self.receiveQueue, chain, written: 0)
            return true
        }
        let want = min(room, limits.maxPayload, connection.peerCredit)
        if scratch.count < VsockHeader.size + want { scratch = [UInt8](repeating: 0, count: VsockHeader.size + limits.maxPayload) }
        let result = scratch.withUnsafeMutableBytes {
            VsockHostSocket.receive(connection.socket, into: UnsafeMutableRawBufferPointer(rebasing: $0[VsockHeader.size..<VsockHeader.size + want]))
        }
        switch result {
        case .bytes(let n):
            let header = connection.header(guestCID: guestCID, .readWrite, length: UInt32(n))
            scratch.replaceSubrange(0..<VsockHeader.size, with: header.bytes)
            let written: Int
            do { written = try chain.writeAll(scratch[0..<VsockHeader.size + n], queues.memory) } catch { throw .memory(error) }
            try queues.complete(Self.receiveQueue, chain, written: written)
            connection.txCount &+= UInt32(n)
        case .wouldBlock:
            queues.unpop(Self.receiveQueue)
            connection.hostReadable = false
        case .endOfStream:
            queues.unpop(Self.receiveQueue)
            connection.hostEnded = true
            // A peer that closed outright will not read either; one that only shut its
            // sending side may still read what the guest sends.
            let flags = VsockHostSocket.peerHungUp(connection.socket) ? VsockShutdown.both : VsockShutdown.send
            replies.append(.connection(connection, .shutdown, flags: flags))
        case .failed:
            queues.unpop(Self.receiveQueue)
            abort(connection)
        }
        return true
    }
}
