// SPDX-License-Identifier: MIT
// Where models come from: registered datasets (versions, curators), trainer keys, and per model the
// hash of its signed training-run statement. A second contract beside ProvenanceRegistry, so the
// first one, its storage and its gas figures stay as they are. See docs/CONTRACTS.md and docs/LINEAGE.md.
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @notice The part of ProvenanceRegistry this contract reads and calls.
interface IProvenanceRegistry {
    function hasRole(bytes32 role, address account) external view returns (bool);
    function modelStatus(bytes32 modelHash) external view returns (uint8);
    function registerModel(
        bytes32 modelHash,
        string calldata name,
        string calldata version,
        bytes32 parentHash,
        bytes32 manifestHash,
        string calldata metadataURI
    ) external;
    function approveModel(bytes32 modelHash) external;
    function deprecateModel(bytes32 modelHash) external;
    function revokeModel(bytes32 modelHash) external;
}

/// @title LineageRegistry
/// @notice Datasets are written only by DATA_CURATOR_ROLE holders, and a new version of a dataset
/// only by the curator of its parent. Trainer keys (Ed25519, 32 bytes) are listed by
/// TRAINER_REGISTRAR_ROLE. A training run is attached to a registered model by a publisher
/// (MODEL_PUBLISHER_ROLE in the ProvenanceRegistry or in this contract), once, naming a valid
/// trainer key and registered datasets. Append-only apart from a trainer key's revocation.
contract LineageRegistry is AccessControl {
    /// @notice May register datasets (and new versions of the datasets it curates).
    bytes32 public constant DATA_CURATOR_ROLE = keccak256("DATA_CURATOR_ROLE");
    /// @notice May list and revoke trainer keys.
    bytes32 public constant TRAINER_REGISTRAR_ROLE = keccak256("TRAINER_REGISTRAR_ROLE");
    /// @notice Publishers: held in the ProvenanceRegistry (direct registration allowed) or here (when
    /// only this contract may register models there, so every model comes with a training run).
    bytes32 public constant MODEL_PUBLISHER_ROLE = keccak256("MODEL_PUBLISHER_ROLE");
    /// @notice Version of this contract's interface; bumped on any ABI change.
    uint256 public constant LINEAGE_VERSION = 1;
    /// @notice Upper bound on the datasets one training run names.
    uint256 public constant MAX_RUN_DATASETS = 64;

    /// @notice The model registry this lineage belongs to.
    IProvenanceRegistry public immutable registry;

    struct Dataset {
        bytes32 parentHash; // 0 for a first version
        address curator;
        uint64 registeredAt; // block timestamp, seconds
        string name;
        string version;
        string uri;
    }

    struct TrainerKey {
        uint64 registeredAt; // 0: never registered
        uint64 revokedAt; // 0: valid
        string name;
    }

    struct TrainingRun {
        bytes32 statementHash; // sha256 of the DSSE payload (the statement bytes); 0: none attached
        bytes32 trainerKey;
        address publisher;
        uint64 attachedAt;
    }

    /// @notice Arguments of registerTrainedModel: a model registration and its training run.
    struct TrainedModel {
        bytes32 modelHash;
        string name;
        string version;
        bytes32 parentHash;
        bytes32 manifestHash;
        string metadataURI;
        bytes32 statementHash;
        bytes32 trainerKey;
        bytes32[] datasetHashes;
    }

    mapping(bytes32 => Dataset) private _datasets;
    mapping(bytes32 => TrainerKey) private _trainerKeys;
    mapping(bytes32 => TrainingRun) private _runs;

    event DatasetRegistered(
        bytes32 indexed datasetHash, bytes32 indexed parentHash, string name, string version, string uri, address indexed curator
    );
    event TrainerKeyRegistered(bytes32 indexed publicKey, string name, address indexed by);
    event TrainerKeyRevoked(bytes32 indexed publicKey, address indexed by);
    event TrainingRunAttached(
        bytes32 indexed modelHash, bytes32 indexed statementHash, bytes32 indexed trainerKey, bytes32[] datasetHashes, address publisher
    );

    error ZeroAddress();
    error ZeroHash();
    error EmptyName();
    error EmptyVersion();
    error DatasetAlreadyRegistered(bytes32 datasetHash);
    error UnknownDataset(bytes32 datasetHash);
    error NotDatasetCurator(bytes32 parentHash, address curator);
    error TrainerKeyAlreadyRegistered(bytes32 publicKey);
    error UnknownTrainerKey(bytes32 publicKey);
    error TrainerKeyNotValid(bytes32 publicKey);
    error UnknownModel(bytes32 modelHash);
    error TrainingRunAlreadyAttached(bytes32 modelHash);
    error TooManyDatasets(uint256 count);

    constructor(address admin, IProvenanceRegistry registry_) {
        if (admin == address(0) || address(registry_) == address(0)) revert ZeroAddress();
        registry = registry_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // ----------------------------------------------------------------------------------------
    // Datasets

    /// @notice Registers a dataset version by its manifest digest (OMS root digest). A child version
    /// needs a registered parent curated by the caller: curators cannot add to others' datasets.
    function registerDataset(
        bytes32 datasetHash,
        bytes32 parentHash,
        string calldata name,
        string calldata version,
        string calldata uri
    ) external onlyRole(DATA_CURATOR_ROLE) {
        if (datasetHash == bytes32(0)) revert ZeroHash();
        if (bytes(name).length == 0) revert EmptyName();
        if (bytes(version).length == 0) revert EmptyVersion();
        Dataset storage d = _datasets[datasetHash];
        if (d.curator != address(0)) revert DatasetAlreadyRegistered(datasetHash);
        if (parentHash != bytes32(0)) {
            address parentCurator = _datasets[parentHash].curator;
            if (parentCurator == address(0)) revert UnknownDataset(parentHash);
            if (parentCurator != msg.sender) revert NotDatasetCurator(parentHash, parentCurator);
        }
        d.parentHash = parentHash;
        d.curator = msg.sender;
        d.registeredAt = uint64(block.timestamp);
        d.name = name;
        d.version = version;
        d.uri = uri;
        emit DatasetRegistered(datasetHash, parentHash, name, version, uri, msg.sender);
    }

    function getDataset(bytes32 datasetHash) external view returns (Dataset memory) {
        Dataset memory d = _datasets[datasetHash];
        if (d.curator == address(0)) revert UnknownDataset(datasetHash);
        return d;
    }

    // ----------------------------------------------------------------------------------------
    // Trainer keys

    function registerTrainerKey(bytes32 publicKey, string calldata name) external onlyRole(TRAINER_REGISTRAR_ROLE) {
        if (publicKey == bytes32(0)) revert ZeroHash();
        if (bytes(name).length == 0) revert EmptyName();
        TrainerKey storage k = _trainerKeys[publicKey];
        if (k.registeredAt != 0) revert TrainerKeyAlreadyRegistered(publicKey);
        k.registeredAt = uint64(block.timestamp);
        k.name = name;
        emit TrainerKeyRegistered(publicKey, name, msg.sender);
    }

    /// @notice Revokes a trainer key: runs attached before stay, no new run may name it.
    function revokeTrainerKey(bytes32 publicKey) external onlyRole(TRAINER_REGISTRAR_ROLE) {
        TrainerKey storage k = _trainerKeys[publicKey];
        if (k.registeredAt == 0) revert UnknownTrainerKey(publicKey);
        if (k.revokedAt != 0) revert TrainerKeyNotValid(publicKey);
        k.revokedAt = uint64(block.timestamp);
        emit TrainerKeyRevoked(publicKey, msg.sender);
    }

    function getTrainerKey(bytes32 publicKey) external view returns (TrainerKey memory) {
        TrainerKey memory k = _trainerKeys[publicKey];
        if (k.registeredAt == 0) revert UnknownTrainerKey(publicKey);
        return k;
    }

    // ----------------------------------------------------------------------------------------
    // Training runs

    /// @notice Attaches the training run of a model already in the ProvenanceRegistry.
    function attachTrainingRun(bytes32 modelHash, bytes32 statementHash, bytes32 trainerKey, bytes32[] calldata datasetHashes)
        external
    {
        _onlyPublisher();
        if (registry.modelStatus(modelHash) == 0) revert UnknownModel(modelHash);
        _attach(modelHash, statementHash, trainerKey, datasetHashes);
    }

    /// @notice Registers a model in the ProvenanceRegistry together with its training run, in one
    /// transaction. This contract must hold MODEL_PUBLISHER_ROLE there; when it is the only holder,
    /// every model has a training run (docs/CONTRACTS.md, "Requiring a training run").
    function registerTrainedModel(TrainedModel calldata m) external {
        _onlyPublisher();
        registry.registerModel(m.modelHash, m.name, m.version, m.parentHash, m.manifestHash, m.metadataURI);
        _attach(m.modelHash, m.statementHash, m.trainerKey, m.datasetHashes);
    }

    /// @notice Model status changes for publishers who hold their role here (the registry sees this
    /// contract as the caller; it must hold MODEL_PUBLISHER_ROLE there).
    function approveModel(bytes32 modelHash) external {
        _onlyPublisher();
        registry.approveModel(modelHash);
    }

    function deprecateModel(bytes32 modelHash) external {
        _onlyPublisher();
        registry.deprecateModel(modelHash);
    }

    function revokeModel(bytes32 modelHash) external {
        _onlyPublisher();
        registry.revokeModel(modelHash);
    }

    /// @notice The run attached to a model; statementHash 0 when none.
    function getTrainingRun(bytes32 modelHash) external view returns (TrainingRun memory) {
        return _runs[modelHash];
    }

    function _onlyPublisher() private view {
        if (!hasRole(MODEL_PUBLISHER_ROLE, msg.sender) && !registry.hasRole(MODEL_PUBLISHER_ROLE, msg.sender)) {
            revert AccessControlUnauthorizedAccount(msg.sender, MODEL_PUBLISHER_ROLE);
        }
    }

    function _attach(bytes32 modelHash, bytes32 statementHash, bytes32 trainerKey, bytes32[] calldata datasetHashes) private {
        if (statementHash == bytes32(0)) revert ZeroHash();
        if (datasetHashes.length > MAX_RUN_DATASETS) revert TooManyDatasets(datasetHashes.length);
        TrainerKey storage k = _trainerKeys[trainerKey];
        if (k.registeredAt == 0) revert UnknownTrainerKey(trainerKey);
        if (k.revokedAt != 0) revert TrainerKeyNotValid(trainerKey);
        for (uint256 i = 0; i < datasetHashes.length; i++) {
            if (_datasets[datasetHashes[i]].curator == address(0)) revert UnknownDataset(datasetHashes[i]);
        }
        TrainingRun storage r = _runs[modelHash];
        if (r.statementHash != bytes32(0)) revert TrainingRunAlreadyAttached(modelHash);
        r.statementHash = statementHash;
        r.trainerKey = trainerKey;
        r.publisher = msg.sender;
        r.attachedAt = uint64(block.timestamp);
        emit TrainingRunAttached(modelHash, statementHash, trainerKey, datasetHashes, msg.sender);
    }
}
