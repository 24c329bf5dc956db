"""Kafka message schemas as data: one dense line per message, parsed once into `Message` trees.

Notation (pyggy's own shorthand for Kafka's JSON message definitions):
``Name k<api> v<lo>-<hi> flex<N>+|flexnone: fields``, the
fields separated by `` | ``. A field is ``Name:type`` (``i8 i16 i32 i64 u16 u32 f64 bool uuid str
bytes records`` or ``[]type``), ``Name[]{...}`` (array of structs) or ``Name{...}`` (struct),
then optionally ``?`` (nullable wherever present) or ``?(A+)``/``?(A-B)`` (nullable in those
versions), ``vA``/``vA-B``/``vA+`` (field versions; absent = all), ``@tN`` (tagged field N) and
``=x`` (a non-zero default). The ``v`` range of a message is the range this server supports:
it is written here only, and the handler registry (`pyggy.kafka_wire.registry`), ApiVersions,
the README and the tests take it from here (an API without a registry row is known to the
codec but not offered). Field lists follow Apache Kafka's message
definitions (``clients/src/main/resources/common/message/*.json``);
tests/kafka_wire/protocol/test_kafka_schema_crosscheck.py compares them, version by version,
with those of the Kafka release the interop suite runs.
"""

# ruff: noqa: E501  (one schema per line)
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any, NamedTuple, cast
from uuid import UUID

ANY = 0x7FFF  # upper bound of an open "N+" version range

SCALAR_TYPES = ("i8", "i16", "i32", "i64", "u16", "u32", "f64", "bool")
TYPES = (*SCALAR_TYPES, "uuid", "str", "bytes", "records", "struct")

_SCHEMAS = """
ProduceRequest k0 v0-12 flex9+: TransactionalId:str? v3+ | Acks:i16 | TimeoutMs:i32 | TopicData[]{Name:str v0-12 | TopicId:uuid v13+ | PartitionData[]{Index:i32 | Records:records?}}
ProduceResponse k0 v0-12 flex9+: Responses[]{Name:str v0-12 | TopicId:uuid v13+ | PartitionResponses[]{Index:i32 | ErrorCode:i16 | BaseOffset:i64 | LogAppendTimeMs:i64 v2+ =-1 | LogStartOffset:i64 v5+ =-1 | RecordErrors[]{BatchIndex:i32 v8+ | BatchIndexErrorMessage:str? v8+} v8+ | ErrorMessage:str? v8+ | CurrentLeader{LeaderId:i32 v10+ =-1 | LeaderEpoch:i32 v10+ =-1} v10+ @t0}} | ThrottleTimeMs:i32 v1+ | NodeEndpoints[]{NodeId:i32 v10+ | Host:str v10+ | Port:i32 v10+ | Rack:str? v10+} v10+ @t0
FetchRequest k1 v4-12 flex12+: ClusterId:str? v12+ @t0 | ReplicaId:i32 v0-14 =-1 | ReplicaState{ReplicaId:i32 v15+ =-1 | ReplicaEpoch:i64 v15+ =-1} v15+ @t1 | MaxWaitMs:i32 | MinBytes:i32 | MaxBytes:i32 v3+ =0x7fffffff | IsolationLevel:i8 v4+ | SessionId:i32 v7+ | SessionEpoch:i32 v7+ =-1 | Topics[]{Topic:str v0-12 | TopicId:uuid v13+ | Partitions[]{Partition:i32 | CurrentLeaderEpoch:i32 v9+ =-1 | FetchOffset:i64 | LastFetchedEpoch:i32 v12+ =-1 | LogStartOffset:i64 v5+ =-1 | PartitionMaxBytes:i32 | ReplicaDirectoryId:uuid v17+ @t0 | HighWatermark:i64 v18+ @t1 =9223372036854775807}} | ForgottenTopicsData[]{Topic:str v7-12 | TopicId:uuid v13+ | Partitions:[]i32 v7+} v7+ | RackId:str v11+
FetchResponse k1 v4-12 flex12+: ThrottleTimeMs:i32 v1+ | ErrorCode:i16 v7+ | SessionId:i32 v7+ | Responses[]{Topic:str v0-12 | TopicId:uuid v13+ | Partitions[]{PartitionIndex:i32 | ErrorCode:i16 | HighWatermark:i64 | LastStableOffset:i64 v4+ =-1 | LogStartOffset:i64 v5+ =-1 | DivergingEpoch{Epoch:i32 v12+ =-1 | EndOffset:i64 v12+ =-1} v12+ @t0 | CurrentLeader{LeaderId:i32 v12+ =-1 | LeaderEpoch:i32 v12+ =-1} v12+ @t1 | SnapshotId{EndOffset:i64 =-1 | Epoch:i32 =-1} v12+ @t2 | AbortedTransactions[]{ProducerId:i64 v4+ | FirstOffset:i64 v4+}? v4+ | PreferredReadReplica:i32 v11+ =-1 | Records:records?}} | NodeEndpoints[]{NodeId:i32 v16+ | Host:str v16+ | Port:i32 v16+ | Rack:str? v16+} v16+ @t0
ListOffsetsRequest k2 v1-7 flex6+: ReplicaId:i32 | IsolationLevel:i8 v2+ | Topics[]{Name:str | Partitions[]{PartitionIndex:i32 | CurrentLeaderEpoch:i32 v4+ =-1 | Timestamp:i64 | MaxNumOffsets:i32 v0 =1}} | TimeoutMs:i32 v10+
ListOffsetsResponse k2 v1-7 flex6+: ThrottleTimeMs:i32 v2+ | Topics[]{Name:str | Partitions[]{PartitionIndex:i32 | ErrorCode:i16 | OldStyleOffsets:[]i64 v0 | Timestamp:i64 v1+ =-1 | Offset:i64 v1+ =-1 | LeaderEpoch:i32 v4+ =-1}}
MetadataRequest k3 v0-12 flex9+: Topics[]{TopicId:uuid v10+ | Name:str?(10+)}?(1+) | AllowAutoTopicCreation:bool v4+ =true | IncludeClusterAuthorizedOperations:bool v8-10 | IncludeTopicAuthorizedOperations:bool v8+
MetadataResponse k3 v0-12 flex9+: ThrottleTimeMs:i32 v3+ | Brokers[]{NodeId:i32 | Host:str | Port:i32 | Rack:str? v1+} | ClusterId:str? v2+ | ControllerId:i32 v1+ =-1 | Topics[]{ErrorCode:i16 | Name:str?(12+) | TopicId:uuid v10+ | IsInternal:bool v1+ | Partitions[]{ErrorCode:i16 | PartitionIndex:i32 | LeaderId:i32 | LeaderEpoch:i32 v7+ =-1 | ReplicaNodes:[]i32 | IsrNodes:[]i32 | OfflineReplicas:[]i32 v5+} | TopicAuthorizedOperations:i32 v8+ =-2147483648} | ClusterAuthorizedOperations:i32 v8-10 =-2147483648 | ErrorCode:i16 v13+
OffsetCommitRequest k8 v2-9 flex8+: GroupId:str | GenerationIdOrMemberEpoch:i32 v1+ =-1 | MemberId:str v1+ | GroupInstanceId:str? v7+ | RetentionTimeMs:i64 v2-4 =-1 | Topics[]{Name:str v0-9 | TopicId:uuid v10+ | Partitions[]{PartitionIndex:i32 | CommittedOffset:i64 | CommittedLeaderEpoch:i32 v6+ =-1 | CommitTimestamp:i64 v1 =-1 | CommittedMetadata:str?}}
OffsetCommitResponse k8 v2-9 flex8+: ThrottleTimeMs:i32 v3+ | Topics[]{Name:str v0-9 | TopicId:uuid v10+ | Partitions[]{PartitionIndex:i32 | ErrorCode:i16}}
OffsetFetchRequest k9 v1-9 flex6+: GroupId:str v0-7 | Topics[]{Name:str v0-7 | PartitionIndexes:[]i32 v0-7}?(2-7) v0-7 | Groups[]{GroupId:str v8+ | MemberId:str? v9+ | MemberEpoch:i32 v9+ =-1 | Topics[]{Name:str v8-9 | TopicId:uuid v10+ | PartitionIndexes:[]i32 v8+}? v8+} v8+ | RequireStable:bool v7+
OffsetFetchResponse k9 v1-9 flex6+: ThrottleTimeMs:i32 v3+ | Topics[]{Name:str v0-7 | Partitions[]{PartitionIndex:i32 v0-7 | CommittedOffset:i64 v0-7 | CommittedLeaderEpoch:i32 v5-7 =-1 | Metadata:str? v0-7 | ErrorCode:i16 v0-7} v0-7} v0-7 | ErrorCode:i16 v2-7 | Groups[]{GroupId:str v8+ | Topics[]{Name:str v8-9 | TopicId:uuid v10+ | Partitions[]{PartitionIndex:i32 v8+ | CommittedOffset:i64 v8+ | CommittedLeaderEpoch:i32 v8+ =-1 | Metadata:str? v8+ | ErrorCode:i16 v8+} v8+} v8+ | ErrorCode:i16 v8+} v8+
FindCoordinatorRequest k10 v0-4 flex3+: Key:str v0-3 | KeyType:i8 v1+ | CoordinatorKeys:[]str v4+
FindCoordinatorResponse k10 v0-4 flex3+: ThrottleTimeMs:i32 v1+ | ErrorCode:i16 v0-3 | ErrorMessage:str? v1-3 | NodeId:i32 v0-3 | Host:str v0-3 | Port:i32 v0-3 | Coordinators[]{Key:str v4+ | NodeId:i32 v4+ | Host:str v4+ | Port:i32 v4+ | ErrorCode:i16 v4+ | ErrorMessage:str? v4+} v4+
JoinGroupRequest k11 v0-9 flex6+: GroupId:str | SessionTimeoutMs:i32 | RebalanceTimeoutMs:i32 v1+ =-1 | MemberId:str | GroupInstanceId:str? v5+ | ProtocolType:str | Protocols[]{Name:str | Metadata:bytes} | Reason:str? v8+
JoinGroupResponse k11 v0-9 flex6+: ThrottleTimeMs:i32 v2+ | ErrorCode:i16 | GenerationId:i32 =-1 | ProtocolType:str? v7+ | ProtocolName:str?(7+) | Leader:str | SkipAssignment:bool v9+ | MemberId:str | Members[]{MemberId:str | GroupInstanceId:str? v5+ | Metadata:bytes}
HeartbeatRequest k12 v0-4 flex4+: GroupId:str | GenerationId:i32 | MemberId:str | GroupInstanceId:str? v3+
HeartbeatResponse k12 v0-4 flex4+: ThrottleTimeMs:i32 v1+ | ErrorCode:i16
LeaveGroupRequest k13 v0-5 flex4+: GroupId:str | MemberId:str v0-2 | Members[]{MemberId:str v3+ | GroupInstanceId:str? v3+ | Reason:str? v5+} v3+
LeaveGroupResponse k13 v0-5 flex4+: ThrottleTimeMs:i32 v1+ | ErrorCode:i16 | Members[]{MemberId:str v3+ | GroupInstanceId:str? v3+ | ErrorCode:i16 v3+} v3+
SyncGroupRequest k14 v0-5 flex4+: GroupId:str | GenerationId:i32 | MemberId:str | GroupInstanceId:str? v3+ | ProtocolType:str? v5+ | ProtocolName:str? v5+ | Assignments[]{MemberId:str | Assignment:bytes}
SyncGroupResponse k14 v0-5 flex4+: ThrottleTimeMs:i32 v1+ | ErrorCode:i16 | ProtocolType:str? v5+ | ProtocolName:str? v5+ | Assignment:bytes
DescribeGroupsRequest k15 v0-6 flex5+: Groups:[]str | IncludeAuthorizedOperations:bool v3+
DescribeGroupsResponse k15 v0-6 flex5+: ThrottleTimeMs:i32 v1+ | Groups[]{ErrorCode:i16 | ErrorMessage:str? v6+ | GroupId:str | GroupState:str | ProtocolType:str | ProtocolData:str | Members[]{MemberId:str | GroupInstanceId:str? v4+ | ClientId:str | ClientHost:str | MemberMetadata:bytes | MemberAssignment:bytes} | AuthorizedOperations:i32 v3+ =-2147483648}
ListGroupsRequest k16 v0-5 flex3+: StatesFilter:[]str v4+ | TypesFilter:[]str v5+
ListGroupsResponse k16 v0-5 flex3+: ThrottleTimeMs:i32 v1+ | ErrorCode:i16 | Groups[]{GroupId:str | ProtocolType:str | GroupState:str v4+ | GroupType:str v5+}
SaslHandshakeRequest k17 v0-1 flexnone: Mechanism:str
SaslHandshakeResponse k17 v0-1 flexnone: ErrorCode:i16 | Mechanisms:[]str
ApiVersionsRequest k18 v0-4 flex3+: ClientSoftwareName:str v3+ | ClientSoftwareVersion:str v3+
ApiVersionsResponse k18 v0-4 flex3+: ErrorCode:i16 | ApiKeys[]{ApiKey:i16 | MinVersion:i16 | MaxVersion:i16} | ThrottleTimeMs:i32 v1+ | SupportedFeatures[]{Name:str v3+ | MinVersion:i16 v3+ | MaxVersion:i16 v3+} v3+ @t0 | FinalizedFeaturesEpoch:i64 v3+ @t1 =-1 | FinalizedFeatures[]{Name:str v3+ | MaxVersionLevel:i16 v3+ | MinVersionLevel:i16 v3+} v3+ @t2 | ZkMigrationReady:bool v3+ @t3
CreateTopicsRequest k19 v2-7 flex5+: Topics[]{Name:str | NumPartitions:i32 | ReplicationFactor:i16 | Assignments[]{PartitionIndex:i32 | BrokerIds:[]i32} | Configs[]{Name:str | Value:str?}} | timeoutMs:i32 =60000 | validateOnly:bool v1+
CreateTopicsResponse k19 v2-7 flex5+: ThrottleTimeMs:i32 v2+ | Topics[]{Name:str | TopicId:uuid v7+ | ErrorCode:i16 | ErrorMessage:str? v1+ | TopicConfigErrorCode:i16 v5+ @t0 | NumPartitions:i32 v5+ =-1 | ReplicationFactor:i16 v5+ =-1 | Configs[]{Name:str v5+ | Value:str? v5+ | ReadOnly:bool v5+ | ConfigSource:i8 v5+ =-1 | IsSensitive:bool v5+}? v5+}
DeleteTopicsRequest k20 v1-6 flex4+: Topics[]{Name:str? v6+ | TopicId:uuid v6+} v6+ | TopicNames:[]str v0-5 | TimeoutMs:i32
DeleteTopicsResponse k20 v1-6 flex4+: ThrottleTimeMs:i32 v1+ | Responses[]{Name:str?(6+) | TopicId:uuid v6+ | ErrorCode:i16 | ErrorMessage:str? v5+}
DeleteRecordsRequest k21 v0-2 flex2+: Topics[]{Name:str | Partitions[]{PartitionIndex:i32 | Offset:i64}} | TimeoutMs:i32
DeleteRecordsResponse k21 v0-2 flex2+: ThrottleTimeMs:i32 | Topics[]{Name:str | Partitions[]{PartitionIndex:i32 | LowWatermark:i64 | ErrorCode:i16}}
InitProducerIdRequest k22 v0-5 flex2+: TransactionalId:str? | TransactionTimeoutMs:i32 | ProducerId:i64 v3+ =-1 | ProducerEpoch:i16 v3+ =-1 | Enable2Pc:bool v6+ | KeepPreparedTxn:bool v6+
InitProducerIdResponse k22 v0-5 flex2+: ThrottleTimeMs:i32 | ErrorCode:i16 | ProducerId:i64 =-1 | ProducerEpoch:i16 | OngoingTxnProducerId:i64 v6+ =-1 | OngoingTxnProducerEpoch:i16 v6+ =-1
OffsetForLeaderEpochRequest k23 v2-4 flex4+: ReplicaId:i32 v3+ =-2 | Topics[]{Topic:str | Partitions[]{Partition:i32 | CurrentLeaderEpoch:i32 v2+ =-1 | LeaderEpoch:i32}}
OffsetForLeaderEpochResponse k23 v2-4 flex4+: ThrottleTimeMs:i32 v2+ | Topics[]{Topic:str | Partitions[]{ErrorCode:i16 | Partition:i32 | LeaderEpoch:i32 v1+ =-1 | EndOffset:i64 =-1}}
AddPartitionsToTxnRequest k24 v0-5 flex3+: Transactions[]{TransactionalId:str v4+ | ProducerId:i64 v4+ | ProducerEpoch:i16 v4+ | VerifyOnly:bool v4+ | Topics[]{Name:str | Partitions:[]i32} v4+} v4+ | V3AndBelowTransactionalId:str v0-3 | V3AndBelowProducerId:i64 v0-3 | V3AndBelowProducerEpoch:i16 v0-3 | V3AndBelowTopics[]{Name:str | Partitions:[]i32} v0-3
AddPartitionsToTxnResponse k24 v0-5 flex3+: ThrottleTimeMs:i32 | ErrorCode:i16 v4+ | ResultsByTransaction[]{TransactionalId:str v4+ | TopicResults[]{Name:str | ResultsByPartition[]{PartitionIndex:i32 | PartitionErrorCode:i16}} v4+} v4+ | ResultsByTopicV3AndBelow[]{Name:str | ResultsByPartition[]{PartitionIndex:i32 | PartitionErrorCode:i16}} v0-3
AddOffsetsToTxnRequest k25 v0-3 flex3+: TransactionalId:str | ProducerId:i64 | ProducerEpoch:i16 | GroupId:str
AddOffsetsToTxnResponse k25 v0-3 flex3+: ThrottleTimeMs:i32 | ErrorCode:i16
EndTxnRequest k26 v0-4 flex3+: TransactionalId:str | ProducerId:i64 | ProducerEpoch:i16 | Committed:bool
EndTxnResponse k26 v0-4 flex3+: ThrottleTimeMs:i32 | ErrorCode:i16 | ProducerId:i64 v5+ =-1 | ProducerEpoch:i16 v5+ =-1
TxnOffsetCommitRequest k28 v0-3 flex3+: TransactionalId:str | GroupId:str | ProducerId:i64 | ProducerEpoch:i16 | GenerationId:i32 v3+ =-1 | MemberId:str v3+ | GroupInstanceId:str? v3+ | Topics[]{Name:str | Partitions[]{PartitionIndex:i32 | CommittedOffset:i64 | CommittedLeaderEpoch:i32 v2+ =-1 | CommittedMetadata:str?}}
TxnOffsetCommitResponse k28 v0-3 flex3+: ThrottleTimeMs:i32 | Topics[]{Name:str | Partitions[]{PartitionIndex:i32 | ErrorCode:i16}}
DescribeAclsRequest k29 v1-3 flex2+: ResourceTypeFilter:i8 | ResourceNameFilter:str? | PatternTypeFilter:i8 v1+ =3 | PrincipalFilter:str? | HostFilter:str? | Operation:i8 | PermissionType:i8
DescribeAclsResponse k29 v1-3 flex2+: ThrottleTimeMs:i32 | ErrorCode:i16 | ErrorMessage:str? | Resources[]{ResourceType:i8 | ResourceName:str | PatternType:i8 v1+ =3 | Acls[]{Principal:str | Host:str | Operation:i8 | PermissionType:i8}}
CreateAclsRequest k30 v1-3 flex2+: Creations[]{ResourceType:i8 | ResourceName:str | ResourcePatternType:i8 v1+ =3 | Principal:str | Host:str | Operation:i8 | PermissionType:i8}
CreateAclsResponse k30 v1-3 flex2+: ThrottleTimeMs:i32 | Results[]{ErrorCode:i16 | ErrorMessage:str?}
DeleteAclsRequest k31 v1-3 flex2+: Filters[]{ResourceTypeFilter:i8 | ResourceNameFilter:str? | PatternTypeFilter:i8 v1+ =3 | PrincipalFilter:str? | HostFilter:str? | Operation:i8 | PermissionType:i8}
DeleteAclsResponse k31 v1-3 flex2+: ThrottleTimeMs:i32 | FilterResults[]{ErrorCode:i16 | ErrorMessage:str? | MatchingAcls[]{ErrorCode:i16 | ErrorMessage:str? | ResourceType:i8 | ResourceName:str | PatternType:i8 v1+ =3 | Principal:str | Host:str | Operation:i8 | PermissionType:i8}}
DescribeConfigsRequest k32 v1-4 flex4+: Resources[]{ResourceType:i8 | ResourceName:str | ConfigurationKeys:[]str?} | IncludeSynonyms:bool v1+ | IncludeDocumentation:bool v3+
DescribeConfigsResponse k32 v1-4 flex4+: ThrottleTimeMs:i32 | Results[]{ErrorCode:i16 | ErrorMessage:str? | ResourceType:i8 | ResourceName:str | Configs[]{Name:str | Value:str? | ReadOnly:bool | ConfigSource:i8 v1+ =-1 | IsDefault:bool v0 | IsSensitive:bool | Synonyms[]{Name:str v1+ | Value:str? v1+ | Source:i8 v1+} v1+ | ConfigType:i8 v3+ | Documentation:str? v3+}}
AlterConfigsRequest k33 v0-2 flex2+: Resources[]{ResourceType:i8 | ResourceName:str | Configs[]{Name:str | Value:str?}} | ValidateOnly:bool
AlterConfigsResponse k33 v0-2 flex2+: ThrottleTimeMs:i32 | Responses[]{ErrorCode:i16 | ErrorMessage:str? | ResourceType:i8 | ResourceName:str}
SaslAuthenticateRequest k36 v0-2 flex2+: AuthBytes:bytes
SaslAuthenticateResponse k36 v0-2 flex2+: ErrorCode:i16 | ErrorMessage:str? | AuthBytes:bytes | SessionLifetimeMs:i64 v1+
CreatePartitionsRequest k37 v0-3 flex2+: Topics[]{Name:str | Count:i32 | Assignments[]{BrokerIds:[]i32}?} | TimeoutMs:i32 | ValidateOnly:bool
CreatePartitionsResponse k37 v0-3 flex2+: ThrottleTimeMs:i32 | Results[]{Name:str | ErrorCode:i16 | ErrorMessage:str?}
DeleteGroupsRequest k42 v0-2 flex2+: GroupsNames:[]str
DeleteGroupsResponse k42 v0-2 flex2+: ThrottleTimeMs:i32 | Results[]{GroupId:str | ErrorCode:i16}
IncrementalAlterConfigsRequest k44 v0-1 flex1+: Resources[]{ResourceType:i8 | ResourceName:str | Configs[]{Name:str | ConfigOperation:i8 | Value:str?}} | ValidateOnly:bool
IncrementalAlterConfigsResponse k44 v0-1 flex1+: ThrottleTimeMs:i32 | Responses[]{ErrorCode:i16 | ErrorMessage:str? | ResourceType:i8 | ResourceName:str}
OffsetDeleteRequest k47 v0 flexnone: GroupId:str | Topics[]{Name:str | Partitions[]{PartitionIndex:i32}}
OffsetDeleteResponse k47 v0 flexnone: ErrorCode:i16 | ThrottleTimeMs:i32 | Topics[]{Name:str | Partitions[]{PartitionIndex:i32 | ErrorCode:i16}}
DescribeClientQuotasRequest k48 v0-1 flex1+: Components[]{EntityType:str | MatchType:i8 | Match:str?} | Strict:bool
DescribeClientQuotasResponse k48 v0-1 flex1+: ThrottleTimeMs:i32 | ErrorCode:i16 | ErrorMessage:str? | Entries[]{Entity[]{EntityType:str | EntityName:str?} | Values[]{Key:str | Value:f64}}?
DescribeUserScramCredentialsRequest k50 v0 flex0+: Users[]{Name:str}?
DescribeUserScramCredentialsResponse k50 v0 flex0+: ThrottleTimeMs:i32 | ErrorCode:i16 | ErrorMessage:str? | Results[]{User:str | ErrorCode:i16 | ErrorMessage:str? | CredentialInfos[]{Mechanism:i8 | Iterations:i32}}
AlterUserScramCredentialsRequest k51 v0 flex0+: Deletions[]{Name:str | Mechanism:i8} | Upsertions[]{Name:str | Mechanism:i8 | Iterations:i32 | Salt:bytes | SaltedPassword:bytes}
AlterUserScramCredentialsResponse k51 v0 flex0+: ThrottleTimeMs:i32 | Results[]{User:str | ErrorCode:i16 | ErrorMessage:str?}
DescribeClusterRequest k60 v0-1 flex0+: IncludeClusterAuthorizedOperations:bool | EndpointType:i8 v1+ =1 | IncludeFencedBrokers:bool v2+
DescribeClusterResponse k60 v0-1 flex0+: ThrottleTimeMs:i32 | ErrorCode:i16 | ErrorMessage:str? | EndpointType:i8 v1+ =1 | ClusterId:str | ControllerId:i32 =-1 | Brokers[]{BrokerId:i32 | Host:str | Port:i32 | Rack:str? | IsFenced:bool v2+} | ClusterAuthorizedOperations:i32 =-2147483648
DescribeProducersRequest k61 v0 flex0+: Topics[]{Name:str | PartitionIndexes:[]i32}
DescribeProducersResponse k61 v0 flex0+: ThrottleTimeMs:i32 | Topics[]{Name:str | Partitions[]{PartitionIndex:i32 | ErrorCode:i16 | ErrorMessage:str? | ActiveProducers[]{ProducerId:i64 | ProducerEpoch:i32 | LastSequence:i32 =-1 | LastTimestamp:i64 =-1 | CoordinatorEpoch:i32 | CurrentTxnStartOffset:i64 =-1}}}
DescribeTransactionsRequest k65 v0 flex0+: TransactionalIds:[]str
DescribeTransactionsResponse k65 v0 flex0+: ThrottleTimeMs:i32 | TransactionStates[]{ErrorCode:i16 | TransactionalId:str | TransactionState:str | TransactionTimeoutMs:i32 | TransactionStartTimeMs:i64 | ProducerId:i64 | ProducerEpoch:i16 | Topics[]{Topic:str | Partitions:[]i32}}
ListTransactionsRequest k66 v0-2 flex0+: StateFilters:[]str | ProducerIdFilters:[]i64 | DurationFilter:i64 v1+ =-1 | TransactionalIdPattern:str?(2+) v2+
ListTransactionsResponse k66 v0-2 flex0+: ThrottleTimeMs:i32 | ErrorCode:i16 | UnknownStateFilters:[]str | TransactionStates[]{TransactionalId:str | ProducerId:i64 | TransactionState:str}
ConsumerGroupHeartbeatRequest k68 v0-1 flex0+: GroupId:str | MemberId:str | MemberEpoch:i32 | InstanceId:str? | RackId:str? | RebalanceTimeoutMs:i32 =-1 | SubscribedTopicNames:[]str? | SubscribedTopicRegex:str? v1+ | ServerAssignor:str? | TopicPartitions[]{TopicId:uuid | Partitions:[]i32}?
ConsumerGroupHeartbeatResponse k68 v0-1 flex0+: ThrottleTimeMs:i32 | ErrorCode:i16 | ErrorMessage:str? | MemberId:str? | MemberEpoch:i32 | HeartbeatIntervalMs:i32 | Assignment{TopicPartitions[]{TopicId:uuid | Partitions:[]i32}}?
ConsumerGroupDescribeRequest k69 v0-1 flex0+: GroupIds:[]str | IncludeAuthorizedOperations:bool
ConsumerGroupDescribeResponse k69 v0-1 flex0+: ThrottleTimeMs:i32 | Groups[]{ErrorCode:i16 | ErrorMessage:str? | GroupId:str | GroupState:str | GroupEpoch:i32 | AssignmentEpoch:i32 | AssignorName:str | Members[]{MemberId:str | InstanceId:str? | RackId:str? | MemberEpoch:i32 | ClientId:str | ClientHost:str | SubscribedTopicNames:[]str | SubscribedTopicRegex:str? | Assignment{TopicPartitions[]{TopicId:uuid | TopicName:str | Partitions:[]i32}} | TargetAssignment{TopicPartitions[]{TopicId:uuid | TopicName:str | Partitions:[]i32}} | MemberType:i8 v1+ =-1} | AuthorizedOperations:i32 =-2147483648}
ConsumerProtocolSubscription v0-3 flexnone: Topics:[]str | UserData:bytes? | OwnedPartitions[]{Topic:str v1+ | Partitions:[]i32 v1+} v1+ | GenerationId:i32 v2+ =-1 | RackId:str? v3+
ConsumerProtocolAssignment v0-3 flexnone: AssignedPartitions[]{Topic:str | Partitions:[]i32} | UserData:bytes?
"""


def snake(name: str) -> str:
    """``ThrottleTimeMs`` → ``throttle_time_ms`` (Kafka's generator rule: ``_`` before each capital)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _in(rng: tuple[int, int] | None, version: int) -> bool:
    return rng is not None and rng[0] <= version <= rng[1]


@dataclass(frozen=True, slots=True)
class Field:
    """One schema field; ``type`` is a scalar/leaf type or ``struct`` (then ``fields`` is set)."""

    kafka_name: str
    type: str
    array: bool = False
    versions: tuple[int, int] = (0, ANY)
    nullable: tuple[int, int] | None = None
    tag: int | None = None
    explicit_default: Any = None
    fields: tuple[Field, ...] = ()
    name: str = field(default="", compare=False)

    def present(self, version: int) -> bool:
        return _in(self.versions, version)

    def nullable_at(self, version: int) -> bool:
        return _in(self.nullable, version)

    def default(self) -> Any:
        """The value a missing field takes (a fresh object for arrays and structs)."""
        if self.explicit_default is not None:
            return self.explicit_default
        lo, hi = self.versions
        if self.nullable is not None and self.nullable[0] <= lo and hi <= self.nullable[1]:
            return None
        if self.array:
            return []
        if self.type == "struct":
            return {f.name: f.default() for f in self.fields}
        return _ZERO[self.type]


_ZERO: dict[str, Any] = {
    "i8": 0, "i16": 0, "i32": 0, "i64": 0, "u16": 0, "u32": 0, "f64": 0.0, "bool": False,
    "uuid": UUID(int=0), "str": "", "bytes": b"", "records": None,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Message:
    """A request, response or data struct: supported ``versions`` and first flexible version."""

    name: str
    api_key: int | None
    versions: tuple[int, int]
    flexible: int | None
    fields: tuple[Field, ...]

    def is_flexible(self, version: int) -> bool:
        return self.flexible is not None and version >= self.flexible


# --- the dense-notation parser ---------------------------------------------------------------

_HEAD = re.compile(r"(\w+)(?: k(\d+))? v(\d+)(?:-(\d+))? flex(none|\d+\+): ")
_NAME = re.compile(r"[A-Za-z0-9]+")
_TYPE = re.compile(r"(\[\])?([a-z0-9]+)")
_RANGE = r"(\d+)(\+|-\d+)?"
_ATTRS = re.compile(
    rf"(?P<null>\?(?:\({_RANGE}\))?)?(?: v(?P<v>{_RANGE}))?(?: @t(?P<tag>\d+))?(?: =(?P<dflt>[^ |}}]+))?"
)


def _range(lo: str, tail: str | None) -> tuple[int, int]:
    if tail is None:
        return int(lo), int(lo)
    return (int(lo), ANY) if tail == "+" else (int(lo), int(tail[1:]))


def _value(text: str, typ: str) -> Any:
    if typ == "bool":
        return text == "true"
    if typ == "f64":
        return float(text)
    return int(text, 0)


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def fail(self, why: str) -> ValueError:
        return ValueError(f"schema syntax: {why} at {self.s[self.i : self.i + 30]!r}")

    def fields(self) -> tuple[Field, ...]:
        out = [self.field()]
        while self.s.startswith(" | ", self.i):
            self.i += 3
            out.append(self.field())
        return tuple(out)

    def field(self) -> Field:
        m = _NAME.match(self.s, self.i)
        if m is None:
            raise self.fail("field name")
        name, self.i = m.group(), m.end()
        sub: tuple[Field, ...] = ()
        if self.s.startswith(":", self.i):
            t = _TYPE.match(self.s, self.i + 1)
            if t is None or t.group(2) not in TYPES:
                raise self.fail("type")
            array, typ, self.i = bool(t.group(1)), t.group(2), t.end()
        else:
            array = self.s.startswith("[]", self.i)
            self.i += 2 if array else 0
            if not self.s.startswith("{", self.i):
                raise self.fail("'{'")
            self.i += 1
            typ, sub = "struct", self.fields()
            if not self.s.startswith("}", self.i):
                raise self.fail("'}'")
            self.i += 1
        a = _ATTRS.match(self.s, self.i)
        assert a is not None  # every group is optional
        self.i = a.end()
        versions = _range(a.group(5), a.group(6)) if a.group("v") else (0, ANY)
        nullable = None
        if a.group("null"):
            nullable = _range(a.group(2), a.group(3)) if a.group(2) else versions
        dflt = a.group("dflt")
        return Field(
            kafka_name=name, type=typ, array=array, versions=versions, nullable=nullable,
            tag=int(a.group("tag")) if a.group("tag") else None,
            explicit_default=None if dflt is None else _value(dflt, typ),
            fields=sub, name=snake(name),
        )  # fmt: skip


def parse_line(line: str) -> Message:
    """Parse one dense schema line into a `Message`."""
    m = _HEAD.match(line)
    if m is None:
        raise ValueError(f"schema syntax: bad header in {line[:60]!r}")
    name, key, lo, hi, flex = m.groups()
    p = _Parser(line)
    p.i = m.end()
    fields = p.fields()
    if p.i != len(line):
        raise p.fail("trailing text")
    return Message(
        name=name, api_key=None if key is None else int(key),
        versions=(int(lo), int(hi if hi is not None else lo)),
        flexible=None if flex == "none" else int(flex[:-1]), fields=fields,
    )  # fmt: skip


class Head(NamedTuple):
    """What a schema line's head says: the API key (None for a data struct), the supported
    versions and the first flexible version."""

    api_key: int | None
    versions: tuple[int, int]
    flexible: int | None


@cache
def _lines() -> dict[str, tuple[Head, str]]:
    """Each message's head and line by name: the heads only are parsed here, the fields of a
    message when it is first needed (`message`): an ApiVersions answer parses two lines."""
    out = {}
    for line in _SCHEMAS.strip().splitlines():
        m = _HEAD.match(line)
        if m is None:
            raise ValueError(f"schema syntax: bad header in {line[:60]!r}")
        name, key, lo, hi, flex = m.groups()
        out[name] = (Head(None if key is None else int(key),
                          (int(lo), int(hi if hi is not None else lo)),
                          None if flex == "none" else int(flex[:-1])), line)
    return out


def heads() -> dict[str, Head]:
    """Every message's `Head` by name (no fields parsed)."""
    return {name: head for name, (head, _) in _lines().items()}


@cache
def message(name: str) -> Message | None:
    """One schema by name, parsed at its first use; None if there is none."""
    entry = _lines().get(name)
    return None if entry is None else parse_line(entry[1])


@cache
def api_names() -> dict[int, tuple[str, str]]:
    """``api_key → (request name, response name)``, from the heads."""
    out: dict[int, list[str]] = {}
    for name, (head, _) in _lines().items():
        if head.api_key is not None:
            out.setdefault(head.api_key, []).append(name)
    return {key: (next(n for n in names if n.endswith("Request")),
                  next(n for n in names if n.endswith("Response")))
            for key, names in out.items()}


@cache
def api_messages(api_key: int) -> tuple[Message, Message] | None:
    """``(request schema, response schema)`` of one API, parsed at its first use."""
    names = api_names().get(api_key)
    if names is None:
        return None
    req, resp = message(names[0]), message(names[1])
    assert req is not None and resp is not None
    if req.versions != resp.versions or req.flexible != resp.flexible:
        raise ValueError(f"request/response mismatch for api key {api_key}")
    return req, resp


def messages() -> dict[str, Message]:
    """Every schema by name (``ProduceRequest``, ``ConsumerProtocolAssignment``, ...), each
    parsed as `message` parses it (the whole table: for tests and cross-checks)."""
    return {name: cast(Message, message(name)) for name in _lines()}


def by_api_key() -> dict[int, tuple[Message, Message]]:
    """``api_key → (request schema, response schema)`` of every API, as `api_messages`."""
    return {key: cast(tuple[Message, Message], api_messages(key)) for key in api_names()}
