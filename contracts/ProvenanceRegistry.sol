// SPDX-License-Identifier: MIT
// The on-chain witness of the edge provenance system: device keys (with rotation and revocation),
// model versions (with lineage and status) and anchored Merkle batch roots. See docs/CONTRACTS.md.
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title ProvenanceRegistry
/// @notice Holds what a verifier needs to check an edge device's records months later: which
/// Ed25519 key a device used at a given time, which model files exist and whether they may be
/// used, and which batch roots were anchored when. Entries are append-only: every change emits
/// an event, nothing is ever overwritten or deleted.
contract ProvenanceRegistry is AccessControl {
    // ----------------------------------------------------------------------------------------
    // Roles (DEFAULT_ADMIN_ROLE comes from AccessControl and administers all of them)
    // ----------------------------------------------------------------------------------------

    /// @notice May register devices, rotate their keys and revoke them.
    bytes32 public constant DEVICE_REGISTRAR_ROLE = keccak256("DEVICE_REGISTRAR_ROLE");
    /// @notice May register models and move them through their status lifecycle.
    bytes32 public constant MODEL_PUBLISHER_ROLE = keccak256("MODEL_PUBLISHER_ROLE");
    /// @notice May anchor Merkle batch roots (held by gateways).
    bytes32 public constant ANCHORER_ROLE = keccak256("ANCHORER_ROLE");

    /// @notice Version of this contract's interface; bumped on any ABI change.
    uint256 public constant REGISTRY_VERSION = 1;
    /// @notice Upper bound on the entries one lineage() call returns.
    uint256 public constant MAX_LINEAGE_DEPTH = 64;

    // ----------------------------------------------------------------------------------------
    // Types
    // ----------------------------------------------------------------------------------------

    /// @notice One Ed25519 public key of a device and the device time from which it is valid.
    /// It stays valid until the next key's validFromMs (or forever for the last key).
    struct KeyPeriod {
        bytes32 publicKey;
        uint64 validFromMs;
    }

    /// @notice Device summary. Keys are kept separately (see deviceKeys).
    struct Device {
        uint64 registeredAt; // block timestamp, seconds
        bool revoked;
        uint64 revokedFromMs; // device time from which records are no longer trusted
        uint64 keyCount;
    }

    /// @notice Lifecycle of a model; a status only moves forward in this order, Revoked is final.
    enum ModelStatus {
        None,
        Registered,
        Approved,
        Deprecated,
        Revoked
    }

    struct Model {
        bytes32 parentHash; // 0 for a model without parent
        bytes32 manifestHash; // hash of the per-initializer tensor manifest
        address publisher;
        uint64 registeredAt; // block timestamp, seconds
        ModelStatus status;
        string name;
        string version;
        string metadataURI;
    }

    /// @notice What is stored per anchored root: one storage slot. The remaining batch fields
    /// (record times, metadata hash, anchorer) live only in the Anchored event, which an indexer
    /// finds in block `blockNumber` with the root as topic.
    struct Anchor {
        uint64 batchId; // 1-based, 0 means "not anchored"
        uint64 size; // number of records (Merkle leaves) in the batch
        uint64 blockNumber;
        uint64 anchoredAt; // block timestamp, seconds
    }

    // ----------------------------------------------------------------------------------------
    // Events (AccessControl adds RoleGranted, RoleRevoked, RoleAdminChanged)
    // ----------------------------------------------------------------------------------------

    event DeviceRegistered(bytes32 indexed deviceId, bytes32 publicKey, uint64 validFromMs, address indexed registrar);
    event DeviceKeyRotated(
        bytes32 indexed deviceId,
        uint64 keyIndex,
        bytes32 previousKey,
        bytes32 publicKey,
        uint64 validFromMs,
        address indexed registrar
    );
    event DeviceRevoked(bytes32 indexed deviceId, uint64 revokedFromMs, address indexed registrar);

    event ModelRegistered(
        bytes32 indexed modelHash,
        bytes32 indexed parentHash,
        string name,
        string version,
        bytes32 manifestHash,
        string metadataURI,
        address indexed publisher
    );
    event ModelStatusChanged(bytes32 indexed modelHash, ModelStatus from, ModelStatus to, address indexed by);

    event Anchored(
        uint64 indexed batchId,
        bytes32 indexed root,
        address indexed anchorer,
        uint64 size,
        uint64 firstRecordTimeMs,
        uint64 lastRecordTimeMs,
        bytes32 metadataHash
    );

    // ----------------------------------------------------------------------------------------
    // Errors
    // ----------------------------------------------------------------------------------------

    error ZeroAddress();
    error ZeroDeviceId();
    error InvalidPublicKey();
    error UnknownDevice(bytes32 deviceId);
    error DeviceAlreadyRegistered(bytes32 deviceId);
    error DeviceAlreadyRevoked(bytes32 deviceId);
    error KeyUnchanged(bytes32 deviceId);
    error KeyValidityNotIncreasing(uint64 previousValidFromMs, uint64 validFromMs);

    error ZeroModelHash();
    error EmptyName();
    error EmptyVersion();
    error UnknownModel(bytes32 modelHash);
    error ModelAlreadyRegistered(bytes32 modelHash);
    error InvalidStatusTransition(bytes32 modelHash, ModelStatus from, ModelStatus to);

    error ZeroRoot();
    error EmptyBatch();
    error InvalidTimeOrder(uint64 firstRecordTimeMs, uint64 lastRecordTimeMs);
    error RootAlreadyAnchored(bytes32 root, uint64 batchId);

    // ----------------------------------------------------------------------------------------
    // Storage
    // ----------------------------------------------------------------------------------------

    mapping(bytes32 deviceId => Device) private _devices;
    /// @dev Keys by index 0..keyCount-1; a mapping rather than an array so that Device.keyCount is
    /// the only length (an array would pay for a second, redundant length slot on every push).
    mapping(bytes32 deviceId => mapping(uint256 index => KeyPeriod)) private _deviceKeys;
    mapping(bytes32 modelHash => Model) private _models;
    mapping(bytes32 root => Anchor) private _anchors;
    /// @dev Id of the next batch. Starts at 1 (set in the constructor) so that no anchor ever pays
    /// for a zero-to-non-zero write of the counter (20 000 gas instead of 2 900).
    uint64 private _nextBatchId;

    constructor(address admin) {
        if (admin == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _nextBatchId = 1;
    }

    // ----------------------------------------------------------------------------------------
    // Devices
    // ----------------------------------------------------------------------------------------

    /// @notice Registers a device with its first Ed25519 public key.
    /// @param deviceId sha256 of the UTF-8 device id string.
    /// @param publicKey raw 32-byte Ed25519 public key.
    /// @param validFromMs device time (unix ms) from which the key is valid.
    function registerDevice(bytes32 deviceId, bytes32 publicKey, uint64 validFromMs)
        external
        onlyRole(DEVICE_REGISTRAR_ROLE)
    {
        if (deviceId == bytes32(0)) revert ZeroDeviceId();
        if (publicKey == bytes32(0)) revert InvalidPublicKey();
        Device storage d = _devices[deviceId];
        if (d.keyCount != 0) revert DeviceAlreadyRegistered(deviceId);
        d.registeredAt = uint64(block.timestamp);
        d.keyCount = 1;
        _deviceKeys[deviceId][0] = KeyPeriod(publicKey, validFromMs);
        emit DeviceRegistered(deviceId, publicKey, validFromMs, msg.sender);
    }

    /// @notice Adds a new key valid from `validFromMs`; earlier keys stay valid for their period,
    /// so records signed before the rotation still verify.
    function rotateDeviceKey(bytes32 deviceId, bytes32 publicKey, uint64 validFromMs)
        external
        onlyRole(DEVICE_REGISTRAR_ROLE)
    {
        if (publicKey == bytes32(0)) revert InvalidPublicKey();
        Device storage d = _devices[deviceId];
        uint64 count = d.keyCount;
        if (count == 0) revert UnknownDevice(deviceId);
        if (d.revoked) revert DeviceAlreadyRevoked(deviceId);
        KeyPeriod storage last = _deviceKeys[deviceId][count - 1];
        if (validFromMs <= last.validFromMs) revert KeyValidityNotIncreasing(last.validFromMs, validFromMs);
        bytes32 previousKey = last.publicKey;
        if (publicKey == previousKey) revert KeyUnchanged(deviceId);
        d.keyCount = count + 1;
        _deviceKeys[deviceId][count] = KeyPeriod(publicKey, validFromMs);
        emit DeviceKeyRotated(deviceId, count, previousKey, publicKey, validFromMs, msg.sender);
    }

    /// @notice Revokes a device for all device times >= `revokedFromMs`. Final.
    function revokeDevice(bytes32 deviceId, uint64 revokedFromMs) external onlyRole(DEVICE_REGISTRAR_ROLE) {
        Device storage d = _devices[deviceId];
        if (d.keyCount == 0) revert UnknownDevice(deviceId);
        if (d.revoked) revert DeviceAlreadyRevoked(deviceId);
        d.revoked = true;
        d.revokedFromMs = revokedFromMs;
        emit DeviceRevoked(deviceId, revokedFromMs, msg.sender);
    }

    /// @notice The key that was valid at device time `timeMs`, the start of its validity, and
    /// whether the device counts as revoked at that time. `publicKey` is 0 when `timeMs` precedes
    /// the first key.
    function keyAt(bytes32 deviceId, uint64 timeMs)
        external
        view
        returns (bytes32 publicKey, uint64 validFromMs, bool revoked)
    {
        Device storage d = _devices[deviceId];
        uint256 count = d.keyCount;
        if (count == 0) revert UnknownDevice(deviceId);
        mapping(uint256 => KeyPeriod) storage keys = _deviceKeys[deviceId];
        // Binary search for the last key with validFromMs <= timeMs (validFromMs strictly increases).
        uint256 lo = 0;
        uint256 hi = count;
        while (lo < hi) {
            uint256 mid = (lo + hi) / 2;
            if (keys[mid].validFromMs <= timeMs) lo = mid + 1;
            else hi = mid;
        }
        if (lo != 0) {
            KeyPeriod storage k = keys[lo - 1];
            publicKey = k.publicKey;
            validFromMs = k.validFromMs;
        }
        revoked = d.revoked && timeMs >= d.revokedFromMs;
    }

    /// @notice The device summary; reverts UnknownDevice for an unregistered id.
    function getDevice(bytes32 deviceId) external view returns (Device memory) {
        Device memory d = _devices[deviceId];
        if (d.keyCount == 0) revert UnknownDevice(deviceId);
        return d;
    }

    /// @notice The full key history of a device, oldest first.
    function deviceKeys(bytes32 deviceId) external view returns (KeyPeriod[] memory keys) {
        uint256 count = _devices[deviceId].keyCount;
        if (count == 0) revert UnknownDevice(deviceId);
        keys = new KeyPeriod[](count);
        for (uint256 i = 0; i < count; ++i) {
            keys[i] = _deviceKeys[deviceId][i];
        }
    }

    // ----------------------------------------------------------------------------------------
    // Models
    // ----------------------------------------------------------------------------------------

    /// @notice Registers a model file by its sha256. A non-zero parent must already be registered,
    /// which also makes lineage cycles impossible.
    function registerModel(
        bytes32 modelHash,
        string calldata name,
        string calldata version,
        bytes32 parentHash,
        bytes32 manifestHash,
        string calldata metadataURI
    ) external onlyRole(MODEL_PUBLISHER_ROLE) {
        if (modelHash == bytes32(0)) revert ZeroModelHash();
        if (bytes(name).length == 0) revert EmptyName();
        if (bytes(version).length == 0) revert EmptyVersion();
        Model storage m = _models[modelHash];
        if (m.status != ModelStatus.None) revert ModelAlreadyRegistered(modelHash);
        if (parentHash != bytes32(0) && _models[parentHash].status == ModelStatus.None) {
            revert UnknownModel(parentHash);
        }
        m.parentHash = parentHash;
        m.manifestHash = manifestHash;
        m.publisher = msg.sender;
        m.registeredAt = uint64(block.timestamp);
        m.status = ModelStatus.Registered;
        m.name = name;
        m.version = version;
        m.metadataURI = metadataURI;
        emit ModelRegistered(modelHash, parentHash, name, version, manifestHash, metadataURI, msg.sender);
        emit ModelStatusChanged(modelHash, ModelStatus.None, ModelStatus.Registered, msg.sender);
    }

    /// @notice Registered → Approved.
    function approveModel(bytes32 modelHash) external onlyRole(MODEL_PUBLISHER_ROLE) {
        _setModelStatus(modelHash, ModelStatus.Approved);
    }

    /// @notice Registered or Approved → Deprecated.
    function deprecateModel(bytes32 modelHash) external onlyRole(MODEL_PUBLISHER_ROLE) {
        _setModelStatus(modelHash, ModelStatus.Deprecated);
    }

    /// @notice Any non-revoked status → Revoked. Final.
    function revokeModel(bytes32 modelHash) external onlyRole(MODEL_PUBLISHER_ROLE) {
        _setModelStatus(modelHash, ModelStatus.Revoked);
    }

    /// @notice The model entry; reverts UnknownModel for an unregistered hash.
    function getModel(bytes32 modelHash) external view returns (Model memory) {
        Model memory m = _models[modelHash];
        if (m.status == ModelStatus.None) revert UnknownModel(modelHash);
        return m;
    }

    /// @notice The status of a model, None for an unregistered hash (no revert, for cheap checks).
    function modelStatus(bytes32 modelHash) external view returns (ModelStatus) {
        return _models[modelHash].status;
    }

    /// @notice The model and its ancestors, child first, at most `maxDepth` entries (capped at
    /// MAX_LINEAGE_DEPTH; 0 means the cap). `complete` is false when the walk stopped early: the
    /// last entry then has a parent, and a caller continues from it.
    function lineage(bytes32 modelHash, uint256 maxDepth)
        external
        view
        returns (bytes32[] memory chain, bool complete)
    {
        if (_models[modelHash].status == ModelStatus.None) revert UnknownModel(modelHash);
        if (maxDepth == 0 || maxDepth > MAX_LINEAGE_DEPTH) maxDepth = MAX_LINEAGE_DEPTH;
        chain = new bytes32[](maxDepth);
        bytes32 current = modelHash;
        uint256 n = 0;
        while (current != bytes32(0) && n < maxDepth) {
            chain[n++] = current;
            current = _models[current].parentHash;
        }
        complete = current == bytes32(0);
        // Shrink the array to the entries written.
        assembly ("memory-safe") {
            mstore(chain, n)
        }
    }

    function _setModelStatus(bytes32 modelHash, ModelStatus to) private {
        Model storage m = _models[modelHash];
        ModelStatus from = m.status;
        if (from == ModelStatus.None) revert UnknownModel(modelHash);
        // Statuses only move forward (Registered < Approved < Deprecated < Revoked).
        if (uint8(to) <= uint8(from)) revert InvalidStatusTransition(modelHash, from, to);
        m.status = to;
        emit ModelStatusChanged(modelHash, from, to, msg.sender);
    }

    // ----------------------------------------------------------------------------------------
    // Anchors
    // ----------------------------------------------------------------------------------------

    /// @notice Anchors the RFC 6962 root of a batch of `size` records whose device times span
    /// [firstRecordTimeMs, lastRecordTimeMs]. A root is anchored at most once.
    /// @return batchId the 1-based id of the new batch.
    function anchor(
        bytes32 root,
        uint64 size,
        uint64 firstRecordTimeMs,
        uint64 lastRecordTimeMs,
        bytes32 metadataHash
    ) external onlyRole(ANCHORER_ROLE) returns (uint64 batchId) {
        if (root == bytes32(0)) revert ZeroRoot();
        if (size == 0) revert EmptyBatch();
        if (lastRecordTimeMs < firstRecordTimeMs) revert InvalidTimeOrder(firstRecordTimeMs, lastRecordTimeMs);
        Anchor storage a = _anchors[root];
        uint64 existing = a.batchId;
        if (existing != 0) revert RootAlreadyAnchored(root, existing);
        batchId = _nextBatchId;
        _nextBatchId = batchId + 1;
        _anchors[root] = Anchor(batchId, size, uint64(block.number), uint64(block.timestamp));
        emit Anchored(batchId, root, msg.sender, size, firstRecordTimeMs, lastRecordTimeMs, metadataHash);
    }

    /// @notice Number of batches anchored so far, which is also the id of the last one.
    function batchCount() external view returns (uint64) {
        return _nextBatchId - 1;
    }

    /// @notice The stored part of an anchored batch; all fields 0 when `root` was never anchored.
    function getAnchor(bytes32 root) external view returns (Anchor memory) {
        return _anchors[root];
    }
}
