/// Packets from the guest's transmit queue: the connection state machine's guest side.
/// A malformed or out-of-place packet is answered with RST (ending its connection, if
/// it had one) or, when there is no one to answer, dropped; it never stops the device.
extension VirtioVsock {
    /// One transmit chain's bytes.
    func receive(_ bytes: [UInt8]) {
        let packet: VsockPacket
        do {
            packet = try VsockPacket.parse(bytes, maxPayload: limits.maxPayload)
        } catch {
            note("\(error)")
            // Answer only a packet that is really from this guest, and never an RST.
            if let header = error.header, header.sourceCID == guestCID {
                refuse(header, endingConnection: header.destinationCID == VsockCID.host)
            }
            return
        }
        handle(packet)
    }

    func handle(_ packet: VsockPacket) {
        let header = packet.header
        guard header.sourceCID == guestCID else {
            note("\(header.op) from CID \(header.sourceCID), not the guest's \(guestCID): dropped")
            return
        }
        guard header.destinationCID == VsockCID.host else {
            // No other VM is reachable through this device.
            refuse(header, endingConnection: false)
            return
        }
        guard header.type == .stream else {
            refuse(header, endingConnection: false)
            return
        }
        let key = VsockConnection.Key(guestPort: header.sourcePort, hostPort: header.destinationPort)
        let connection = connections[key]
        if header.op != .reset { connection?.updatePeerCredit(from: header) }

        switch header.op {
        case .request:
            if let connection {
                note("REQUEST for the live connection \(key)")
                abort(connection)
            } else {
                connectToHost(header, key)
            }

        case .response:
            guard let connection, connection.state == .requestSent else { return refuse(header) }
            connection.state = .established
            connection.greeting = Array("OK \(key.hostPort)\n".utf8)
            _ = connection.flush()

        case .readWrite:
            guard let connection, connection.state == .established,
                  connection.guestShutdown & VsockShutdown.send == 0 else { return refuse(header) }
            guard packet.payload.count <= connection.freeSpace else {
                note("\(key): \(packet.payload.count) bytes sent with \(connection.freeSpace) bytes of credit")
                return abort(connection)
            }
            guard !packet.payload.isEmpty else { return }
            connection.toHost.append(packet.payload)
            connection.rxCount &+= UInt32(packet.payload.count)
            _ = connection.flush()

        case .creditUpdate:
            // The credit was taken above; `service` reads host data it allows.
            guard connection != nil else { return refuse(header) }

        case .creditRequest:
            guard let connection else { return refuse(header) }
            queueCreditUpdate(connection)

        case .shutdown:
            guard let connection else { return refuse(header) }
            connection.guestShutdown |= header.flags & VsockShutdown.both

        case .reset:
            // The guest aborted: pass on what can go without blocking, then close.
            if let connection {
                _ = connection.flush()
                remove(connection)
            }

        default:
            note("unknown \(header.op) on \(key)")
            refuse(header)
        }
    }

    /// Answers `header` with RST; with `endingConnection`, the connection it names (if
    /// any) is aborted too. An RST is never answered.
    func refuse(_ header: VsockHeader, endingConnection: Bool = true) {
        guard header.op != .reset else { return }
        let key = VsockConnection.Key(guestPort: header.sourcePort, hostPort: header.destinationPort)
        if endingConnection, let connection = connections[key] {
            abort(connection)
        } else {
            queueReset(header.reply(.reset))
        }
    }

    /// A guest REQUEST to host port P: connect to `<socketPath>_P`.
    func connectToHost(_ header: VsockHeader, _ key: VsockConnection.Key) {
        guard connections.count < limits.maxConnections else {
            note("connection limit \(limits.maxConnections) reached: \(key) refused")
            return queueReset(header.reply(.reset))
        }
        let path = "\(socketPath)_\(header.destinationPort)"
        let socket: OwnedDescriptor
        do {
            socket = try VsockHostSocket.connect(to: path)
        } catch {
            // No one listens there: the guest's connect fails, as with no listener on a host port.
            return queueReset(header.reply(.reset))
        }
        let connection = VsockConnection(key: key, socket: socket, token: makeToken(), state: .established,
                                         bufAlloc: UInt32(limits.connectionBuffer))
        connection.updatePeerCredit(from: header)
        guard register(connection) else { return queueReset(header.reply(.reset)) }
        replies.append(.connection(connection, .response, flags: 0))
    }

    /// Adds a new connection and its socket (disarmed: `service` arms it).
    func register(_ connection: VsockConnection) -> Bool {
        do {
            try poller.add(connection.socket, token: connection.token, events: 0)
        } catch {
            log("vsock: \(connection.key): \(error)")
            return false
        }
        connections[connection.key] = connection
        connectionTokens[connection.token] = connection.key
        return true
    }

    /// Ends `connection` with RST to the guest and closes the host socket.
    func abort(_ connection: VsockConnection) {
        queueReset(connection.header(guestCID: guestCID, .reset))
        remove(connection)
    }

    /// Forgets `connection`; releasing its socket closes it (the host sees end-of-file).
    func remove(_ connection: VsockConnection) {
        guard connections[connection.key] === connection else { return }
        poller.remove(connection.socket)
        connections[connection.key] = nil
        connectionTokens[connection.token] = nil
    }

    func queueReset(_ header: VsockHeader) {
        guard replies.resets < limits.maxPendingResets else {
            note("\(limits.maxPendingResets) RST replies wait for receive buffers: more dropped")
            return
        }
        replies.append(.header(header))
    }

    func queueCreditUpdate(_ connection: VsockConnection) {
        guard !connection.creditUpdateQueued else { return }
        connection.creditUpdateQueued = true
        replies.append(.connection(connection, .creditUpdate, flags: 0))
    }
}
