// The session subsystem: the session's lifetime, its events as delegates, remote actors
// spawned from the class map, avatars, and the clock poses are timed by.
#include "ThetaSubsystem.h"

#include "Engine/World.h"
#include "GameFramework/WorldSettings.h"
#include "ThetaNetConversions.h"
#include "ThetaNetModule.h"
#include "ThetaNetSettings.h"
#include "ThetaNetText.h"
#include "ThetaReplicatedComponent.h"
#include "ThetaXrComponents.h"

#if THETA_NET_WITH_OPENXR
#include "ThetaNetXrClock.h"
#endif

namespace
{
/** Component type names every peer of a plugin session registers, in this order, then
 *  one "ue.Blob.<Name>" per blob type in name order. */
const TCHAR* const TransformTypeName = TEXT("ue.Transform");
const TCHAR* const ClassTypeName = TEXT("ue.ActorClass");
const TCHAR* const BlobTypePrefix = TEXT("ue.Blob.");

/** Longest peer text (reasons) turned into an FString. */
constexpr size_t MaxTextBytes = 4096;

/** The host's peer id in sessions the plugin hosts (ThetaWorldConfig::local_peer). */
constexpr int32 HostPeer = 0;

constexpr size_t EventBatch = 64;

FString Utf8ToString(const uint8* Data, size_t Len)
{
	if (Data == nullptr || Len == 0)
	{
		return FString();
	}
	const FUTF8ToTCHAR Converted(reinterpret_cast<const ANSICHAR*>(Data), static_cast<int32>(FMath::Min(Len, MaxTextBytes)));
	return FString(Converted.Length(), Converted.Get());
}

/** The message of the last failed call on this thread. */
FString ThetaLastError()
{
	uint8 Buffer[512];
	size_t Len = 0;
	if (theta_last_error(Buffer, sizeof Buffer, &Len) != THETA_STATUS_OK)
	{
		return FString(TEXT("unknown error"));
	}
	return Utf8ToString(Buffer, FMath::Min(Len, sizeof Buffer - 1));
}

EThetaDisconnectCause CauseOf(uint8 Cause)
{
	return Cause >= 1 && Cause <= 7 ? static_cast<EThetaDisconnectCause>(Cause) : EThetaDisconnectCause::Unknown;
}
}  // namespace

// --- Session lifetime ------------------------------------------------------------------

bool UThetaSubsystem::RegisterTypes(ThetaWorld World, FString& OutError)
{
	ComponentNames.Reset();
	BlobComponents.Reset();
	auto Register = [&](const FString& Name, bool bFixed, uint32 Size, uint32& OutId) {
		const FTCHARToUTF8 Utf8(*Name);
		const uint8* Bytes = reinterpret_cast<const uint8*>(Utf8.Get());
		const ThetaStatus Status = bFixed
			? theta_world_register_fixed(World, Bytes, static_cast<size_t>(Utf8.Length()), Size, &OutId)
			: theta_world_register_variable(World, Bytes, static_cast<size_t>(Utf8.Length()), Size, &OutId);
		if (Status != THETA_STATUS_OK)
		{
			OutError = FString::Printf(TEXT("registering %s: %s"), *Name, *ThetaLastError());
			return false;
		}
		ComponentNames.Add(OutId, FName(*Name));
		return true;
	};
	if (!Register(TransformTypeName, true, static_cast<uint32>(ThetaNet::Frames::TransformValueBytes), TransformComponent)
		|| !Register(ClassTypeName, false, ThetaNet::Text::MaxClassKeyBytes, ClassComponent))
	{
		return false;
	}
	// The transform's pose as declared fields (quantised, far fewer bytes), unless raw.
	const UThetaNetSettings* Settings = GetDefault<UThetaNetSettings>();
	if (!Settings->bTransformKeepRaw)
	{
		ThetaField Fields[2];
		ThetaNet::Frames::TransformFields(Settings->TransformPositionPrecisionMm, Settings->TransformRotationPrecisionDeg, Fields);
		if (theta_world_declare_fields(World, TransformComponent, Fields, 2) != THETA_STATUS_OK)
		{
			OutError = FString::Printf(TEXT("declaring the fields of %s: %s"), TransformTypeName, *ThetaLastError());
			return false;
		}
	}
	// Name order, so that peers listing the same blobs in another order still agree.
	TArray<FThetaBlobType> Blobs = GetDefault<UThetaNetSettings>()->BlobTypes;
	Blobs.Sort([](const FThetaBlobType& A, const FThetaBlobType& B) { return A.Name.ToString() < B.Name.ToString(); });
	for (const FThetaBlobType& Blob : Blobs)
	{
		uint32 Id = 0;
		if (Blob.Name.IsNone() || Blob.MaxBytes < 1
			|| !Register(FString(BlobTypePrefix) + Blob.Name.ToString(), false, static_cast<uint32>(Blob.MaxBytes), Id))
		{
			if (OutError.IsEmpty())
			{
				OutError = TEXT("a blob type without a name or size");
			}
			return false;
		}
		BlobComponents.Add(Blob.Name, Id);
	}
	return true;
}

bool UThetaSubsystem::StartSession(bool bHost, FString& OutError)
{
	if (!FThetaNetModule::IsLibraryReady())
	{
		OutError = FThetaNetModule::GetLoadError();
		return false;
	}
	if (Session.id != 0)
	{
		OutError = TEXT("a session is running: call Leave first");
		return false;
	}
	bIsHost = bHost;
	NextClockSync = 0.0;
	bClockFromDisplayTime = false;
	bHasInterestSphere = false;
	InterestScopes.Reset();
	return true;
}

bool UThetaSubsystem::Host(const FString& BindAddress, FString& OutError)
{
	if (!StartSession(true, OutError))
	{
		return false;
	}
	ThetaWorldConfig Config{};
	Config.local_peer = HostPeer;
	ThetaWorld World{0};
	if (theta_world_new(&Config, &World) != THETA_STATUS_OK)
	{
		OutError = ThetaLastError();
		return false;
	}
	if (!RegisterTypes(World, OutError))
	{
		theta_world_free(World);
		return false;
	}
	const FTCHARToUTF8 Bind(*BindAddress);
	ThetaSessionConfig SessionConfig{};
	SessionConfig.struct_size = sizeof(ThetaSessionConfig);
	SessionConfig.interest_cell = GetDefault<UThetaNetSettings>()->InterestCellMeters;
	ThetaSession NewSession{0};
	// On success the world is moved into the session; on failure it stays ours.
	if (theta_session_host(reinterpret_cast<const uint8*>(Bind.Get()), static_cast<size_t>(Bind.Length()), World, nullptr, 0,
			&SessionConfig, &NewSession) != THETA_STATUS_OK)
	{
		OutError = ThetaLastError();
		theta_world_free(World);
		return false;
	}
	// With interest management, actors are placed where their replicated transform is.
	if (SessionConfig.interest_cell > 0.0f
		&& theta_session_set_interest_source(NewSession, TransformComponent, ThetaNet::Frames::TransformPositionOffset)
			!= THETA_STATUS_OK)
	{
		OutError = ThetaLastError();
		theta_session_free(NewSession);
		return false;
	}
	Session = NewSession;
	UE_LOG(LogThetaNet, Log, TEXT("ThetaNet: hosting on %s (port %d), fingerprint %s"), *BindAddress, GetLocalPort(),
		*GetFingerprintHex());
	OnConnected(HostPeer);
	return true;
}

bool UThetaSubsystem::Join(const FString& Address, const FString& FingerprintHex, const FString& Token, FString& OutError)
{
	if (!StartSession(false, OutError))
	{
		return false;
	}
	uint8 Fingerprint[THETA_FINGERPRINT_LEN];
	const FTCHARToUTF8 Hex(*FingerprintHex);
	if (!ThetaNet::Text::ParseFingerprintHex(Hex.Get(), static_cast<size_t>(Hex.Length()), Fingerprint))
	{
		OutError = TEXT("the fingerprint must be 64 hex digits (as the host prints it)");
		return false;
	}
	ThetaWorld Registry{0};
	if (theta_world_new(nullptr, &Registry) != THETA_STATUS_OK)
	{
		OutError = ThetaLastError();
		return false;
	}
	// The session only reads the registry's types (the host refuses other ones).
	bool bJoined = RegisterTypes(Registry, OutError);
	if (bJoined)
	{
		const FTCHARToUTF8 Addr(*Address);
		const FTCHARToUTF8 TokenUtf8(*Token);
		ThetaSession NewSession{0};
		bJoined = theta_session_join(reinterpret_cast<const uint8*>(Addr.Get()), static_cast<size_t>(Addr.Length()), Fingerprint,
					  reinterpret_cast<const uint8*>(TokenUtf8.Get()), static_cast<size_t>(TokenUtf8.Length()), Registry, nullptr,
					  &NewSession) == THETA_STATUS_OK;
		if (bJoined)
		{
			Session = NewSession;
			State = EThetaSessionState::Joining;
		}
		else
		{
			OutError = ThetaLastError();
		}
	}
	theta_world_free(Registry);
	return bJoined;
}

void UThetaSubsystem::OnConnected(int32 Peer)
{
	State = EThetaSessionState::Connected;
	LocalPeer = Peer;
	SyncXrClock();
	// Actors that began play before the session could take their entities.
	TArray<TWeakObjectPtr<UThetaReplicatedComponent>> Ready = MoveTemp(Waiting);
	Waiting.Reset();
	for (const TWeakObjectPtr<UThetaReplicatedComponent>& Component : Ready)
	{
		if (UThetaReplicatedComponent* Live = Component.Get())
		{
			BindLocal(Live);
		}
	}
	OnJoined.Broadcast(Peer);
}

bool UThetaSubsystem::Reconnect(FString& OutError)
{
	if (Session.id == 0)
	{
		OutError = TEXT("no session: Join first");
		return false;
	}
	if (theta_session_reconnect(Session) != THETA_STATUS_OK)
	{
		OutError = ThetaLastError();
		return false;
	}
	State = EThetaSessionState::Joining;
	return true;
}

void UThetaSubsystem::Leave()
{
	if (Session.id != 0)
	{
		EndSession();
	}
}

void UThetaSubsystem::EndSession()
{
	// The handle goes first, so components unregistering below do not despawn through it.
	const ThetaSession Ending = Session;
	Session = ThetaSession{0};
	State = EThetaSessionState::None;
	LocalPeer = -1;
	bIsHost = false;
	bEndAfterEvents = false;

	// Remote actors and avatars go; local actors stay, waiting for the next session.
	TArray<TWeakObjectPtr<UThetaReplicatedComponent>> Bound;
	Entities.GenerateValueArray(Bound);
	Entities.Reset();
	for (const TWeakObjectPtr<UThetaReplicatedComponent>& Component : Bound)
	{
		UThetaReplicatedComponent* Live = Component.Get();
		if (Live == nullptr)
		{
			continue;
		}
		if (Live->IsRemote())
		{
			if (AActor* Actor = Live->GetOwner())
			{
				Actor->Destroy();
			}
		}
		else
		{
			Live->Unbind();
			Waiting.AddUnique(Live);
		}
	}
	for (const TPair<int32, TWeakObjectPtr<AActor>>& Avatar : Avatars)
	{
		if (AActor* Actor = Avatar.Value.Get())
		{
			Actor->Destroy();
		}
	}
	Avatars.Reset();
	PendingRemote.Reset();
	SpawningRemote.Reset();
	RemotePeers.Reset();
	// An orderly close: joins the session's network thread (up to about 1.5 s).
	theta_session_free(Ending);
}

void UThetaSubsystem::Deinitialize()
{
	Leave();
	Waiting.Reset();
	Super::Deinitialize();
}

// --- Queries ---------------------------------------------------------------------------

int32 UThetaSubsystem::GetLocalPort() const
{
	uint16_t Port = 0;
	return Session.id != 0 && theta_session_local_port(Session, &Port) == THETA_STATUS_OK ? Port : 0;
}

FString UThetaSubsystem::GetFingerprintHex() const
{
	uint8 Fingerprint[THETA_FINGERPRINT_LEN];
	if (Session.id == 0 || theta_session_fingerprint(Session, Fingerprint) != THETA_STATUS_OK)
	{
		return FString();
	}
	char Hex[ThetaNet::Text::FingerprintHexDigits + 1];
	ThetaNet::Text::FormatFingerprintHex(Fingerprint, Hex);
	return FString(UTF8_TO_TCHAR(Hex));
}

// --- Interest ---------------------------------------------------------------------------

bool UThetaSubsystem::SetInterest(const FVector& Location, float Radius, float Hysteresis, FString& OutError)
{
	ThetaInterestVolume Sphere{};
	if (!ThetaNet::Frames::TryToInterestSphere(Location, Radius, Hysteresis, GetUnitsPerMeter(), Sphere))
	{
		OutError = TEXT("the location must be finite and the radius and hysteresis at least 0");
		return false;
	}
	const ThetaInterestVolume Previous = InterestSphere;
	const bool bHadSphere = bHasInterestSphere;
	InterestSphere = Sphere;
	bHasInterestSphere = true;
	if (!SendInterest(OutError))
	{
		InterestSphere = Previous;
		bHasInterestSphere = bHadSphere;
		return false;
	}
	return true;
}

bool UThetaSubsystem::SetInterestScopes(const TArray<int32>& Scopes, FString& OutError)
{
	TArray<uint32> Previous = InterestScopes;
	InterestScopes.Reset();
	for (const int32 Scope : Scopes)
	{
		if (Scope < 0)
		{
			InterestScopes = MoveTemp(Previous);
			OutError = TEXT("a scope id is 0 or more");
			return false;
		}
		InterestScopes.Add(static_cast<uint32>(Scope));
	}
	if (!SendInterest(OutError))
	{
		InterestScopes = MoveTemp(Previous);
		return false;
	}
	return true;
}

bool UThetaSubsystem::SendInterest(FString& OutError)
{
	if (Session.id == 0)
	{
		OutError = TEXT("no session: Join first");
		return false;
	}
	if (theta_session_set_interest(Session, bHasInterestSphere ? &InterestSphere : nullptr, bHasInterestSphere ? 1 : 0,
			InterestScopes.GetData(), static_cast<size_t>(InterestScopes.Num()))
		!= THETA_STATUS_OK)
	{
		OutError = ThetaLastError();
		return false;
	}
	return true;
}

bool UThetaSubsystem::MintJoinToken(int32 Peer, FString& OutToken, FString& OutError)
{
	if (Session.id == 0 || !bIsHost)
	{
		OutError = TEXT("only a host mints join tokens");
		return false;
	}
	if (Peer < 1 || Peer > 65535)
	{
		OutError = TEXT("a client's peer id is 1 to 65535");
		return false;
	}
	uint8 Token[THETA_JOIN_TOKEN_LEN];
	size_t Len = 0;
	const uint64 Ttl = static_cast<uint64>(FMath::Max(1, GetDefault<UThetaNetSettings>()->JoinTokenTtlSeconds));
	if (theta_session_mint_token(Session, static_cast<uint16_t>(Peer), Ttl, Token, sizeof Token, &Len) != THETA_STATUS_OK)
	{
		OutError = ThetaLastError();
		return false;
	}
	OutToken = Utf8ToString(Token, Len);
	return true;
}

FString UThetaSubsystem::GetDiagnostics() const
{
	size_t Len = 0;
	if (Session.id == 0 || theta_session_diagnostics_text(Session, nullptr, 0, &Len) != THETA_STATUS_OK)
	{
		return FString();
	}
	TArray<uint8> Buffer;
	Buffer.SetNumZeroed(static_cast<int32>(FMath::Min<size_t>(Len, 1 << 20)) + 1);
	if (theta_session_diagnostics_text(Session, Buffer.GetData(), static_cast<size_t>(Buffer.Num()), &Len) != THETA_STATUS_OK)
	{
		return FString();
	}
	return FString(UTF8_TO_TCHAR(reinterpret_cast<const ANSICHAR*>(Buffer.GetData())));
}

void UThetaSubsystem::RegisterActorClass(FName ClassKey, TSubclassOf<AActor> ActorClass)
{
	RuntimeClasses.Add(ClassKey, ActorClass);
}

UClass* UThetaSubsystem::ResolveClass(FName ClassKey) const
{
	if (const TSubclassOf<AActor>* Runtime = RuntimeClasses.Find(ClassKey))
	{
		return Runtime->Get();
	}
	if (const TSoftClassPtr<AActor>* Configured = GetDefault<UThetaNetSettings>()->ActorClasses.Find(ClassKey))
	{
		return Configured->LoadSynchronous();
	}
	return nullptr;
}

double UThetaSubsystem::GetUnitsPerMeter() const
{
	const UWorld* World = GetWorld();
	const AWorldSettings* Settings = World != nullptr ? World->GetWorldSettings() : nullptr;
	return Settings != nullptr && Settings->WorldToMeters > 0.0f ? static_cast<double>(Settings->WorldToMeters)
																   : ThetaNet::Frames::DefaultUnitsPerMeter;
}

bool UThetaSubsystem::GetBlobComponentId(FName Name, uint32& OutComponent) const
{
	if (const uint32* Id = BlobComponents.Find(Name))
	{
		OutComponent = *Id;
		return true;
	}
	return false;
}

// --- Local entities --------------------------------------------------------------------

void UThetaSubsystem::RegisterReplicated(UThetaReplicatedComponent* Component)
{
	if (Component == nullptr)
	{
		return;
	}
	// An actor this subsystem is spawning for a remote entity claims that entity.
	if (const uint64* Remote = SpawningRemote.Find(Component->GetOwner()))
	{
		const uint64 Entity = *Remote;
		if (!Entities.Contains(Entity))
		{
			Entities.Add(Entity, Component);
			Component->BindRemote(Entity, ThetaNet::Text::EntityCreator(Entity));
		}
		return;
	}
	if (IsConnected())
	{
		BindLocal(Component);
	}
	else
	{
		Waiting.AddUnique(Component);
	}
}

void UThetaSubsystem::UnregisterReplicated(UThetaReplicatedComponent* Component)
{
	if (Component == nullptr)
	{
		return;
	}
	Waiting.Remove(Component);
	const uint64 Entity = Component->GetEntity();
	if (Entity == 0)
	{
		return;
	}
	Entities.Remove(Entity);
	// A local actor that ends takes its entity along.
	if (!Component->IsRemote() && Session.id != 0 && theta_session_despawn(Session, Entity) != THETA_STATUS_OK)
	{
		UE_LOG(LogThetaNet, Verbose, TEXT("ThetaNet: despawn of %llu: %s"), Entity, *ThetaLastError());
	}
}

void UThetaSubsystem::BindLocal(UThetaReplicatedComponent* Component)
{
	uint64_t Spawned = 0;
	if (theta_session_spawn(Session, &Spawned) != THETA_STATUS_OK)
	{
		UE_LOG(LogThetaNet, Warning, TEXT("ThetaNet: no entity for %s: %s"), *GetNameSafe(Component->GetOwner()),
			*ThetaLastError());
		return;
	}
	const uint64 Entity = Spawned;
	Entities.Add(Entity, Component);
	if (!Component->ClassKey.IsNone())
	{
		const FTCHARToUTF8 Key(*Component->ClassKey.ToString());
		if (Key.Length() <= static_cast<int32>(ThetaNet::Text::MaxClassKeyBytes))
		{
			WriteValue(Entity, ClassComponent, reinterpret_cast<const uint8*>(Key.Get()), Key.Length());
		}
		else
		{
			UE_LOG(LogThetaNet, Warning, TEXT("ThetaNet: class key %s is over %u bytes: not sent"),
				*Component->ClassKey.ToString(), ThetaNet::Text::MaxClassKeyBytes);
		}
	}
	Component->BindLocal(Entity, LocalPeer);
}

bool UThetaSubsystem::WriteValue(uint64 Entity, uint32 Component, const uint8* Data, int32 Len)
{
	if (!IsConnected() || Entity == 0 || Len < 0)
	{
		return false;
	}
	if (theta_session_set(Session, Entity, Component, Data, static_cast<size_t>(Len), nullptr) != THETA_STATUS_OK)
	{
		const FName* Name = ComponentNames.Find(Component);
		UE_LOG(LogThetaNet, Warning, TEXT("ThetaNet: write of %s to entity %llu refused: %s"),
			Name != nullptr ? *Name->ToString() : TEXT("?"), Entity, *ThetaLastError());
		return false;
	}
	return true;
}

// --- Ticking and events ----------------------------------------------------------------

TStatId UThetaSubsystem::GetStatId() const
{
	RETURN_QUICK_DECLARE_CYCLE_STAT(UThetaSubsystem, STATGROUP_Tickables);
}

ETickableTickType UThetaSubsystem::GetTickableTickType() const
{
	// The class default object is a tickable object too: it never ticks.
	return IsTemplate() ? ETickableTickType::Never : ETickableTickType::Conditional;
}

void UThetaSubsystem::Tick(float /*DeltaTime*/)
{
	if (Session.id == 0)
	{
		return;
	}
	SyncXrClock();
	if (theta_session_tick(Session) != THETA_STATUS_OK)
	{
		UE_LOG(LogThetaNet, Warning, TEXT("ThetaNet: tick: %s"), *ThetaLastError());
	}
	PollEvents();
	if (bEndAfterEvents && Session.id != 0)
	{
		EndSession();
		return;
	}
	UpdateAvatars();
}

void UThetaSubsystem::PollEvents()
{
	const ThetaSession Polled = Session;
	ThetaSessionEvent Events[EventBatch];
	size_t Count = 0;
	do
	{
		if (theta_session_poll_events(Polled, Events, EventBatch, &Count) != THETA_STATUS_OK)
		{
			return;
		}
		for (size_t Index = 0; Index < Count; ++Index)
		{
			const ThetaSessionEvent& Event = Events[Index];
			switch (Event.kind)
			{
			case THETA_SESSION_EVENT_KIND_JOINED:
				UE_LOG(LogThetaNet, Log, TEXT("ThetaNet: joined as peer %d"), Event.peer);
				OnConnected(Event.peer);
				break;
			case THETA_SESSION_EVENT_KIND_PEER_JOINED:
				RemotePeers.Add(Event.peer);
				OnPeerJoined.Broadcast(Event.peer);
				break;
			case THETA_SESSION_EVENT_KIND_PEER_LEFT:
			{
				RemotePeers.Remove(Event.peer);
				TWeakObjectPtr<AActor> Avatar;
				if (Avatars.RemoveAndCopyValue(Event.peer, Avatar) && Avatar.IsValid())
				{
					Avatar->Destroy();
				}
				OnPeerLeft.Broadcast(Event.peer, Utf8ToString(Event.data, Event.data_len));
				break;
			}
			case THETA_SESSION_EVENT_KIND_DISCONNECTED:
			{
				const FString Reason = Utf8ToString(Event.data, Event.data_len);
				UE_LOG(LogThetaNet, Log, TEXT("ThetaNet: disconnected: %s"), *Reason);
				// An admitted client that timed out may resume (Reconnect); otherwise the session is inert
				// from here on: freed once the events are dispatched.
				if (Event.cause == THETA_DISCONNECT_CAUSE_TIMED_OUT && !bIsHost && LocalPeer >= 0)
				{
					State = EThetaSessionState::Disconnected;
				}
				else
				{
					bEndAfterEvents = true;
				}
				OnDisconnected.Broadcast(CauseOf(Event.cause), Reason);
				break;
			}
			case THETA_SESSION_EVENT_KIND_WRITE_REJECTED:
				OnWriteRejected.Broadcast(Event.peer, ThetaNet::Text::EntityToBlueprint(Event.entity),
					static_cast<int32>(Event.component), Utf8ToString(Event.data, Event.data_len));
				break;
			case THETA_SESSION_EVENT_KIND_JOIN_REFUSED:
				OnJoinRefused.Broadcast(Utf8ToString(Event.data, Event.data_len));
				break;
			default:
				if ((Event.kind >= THETA_SESSION_EVENT_KIND_SPAWN && Event.kind <= THETA_SESSION_EVENT_KIND_DESPAWN)
					|| Event.kind == THETA_SESSION_EVENT_KIND_LEFT)
				{
					HandleEntityEvent(Event);
				}
				break;
			}
			// A delegate may have left (or replaced) the session: the event data went with it.
			if (Session.id != Polled.id)
			{
				return;
			}
		}
	} while (Count == EventBatch);
}

void UThetaSubsystem::HandleEntityEvent(const ThetaSessionEvent& Event)
{
	FThetaEntityEvent Out;
	Out.Kind = static_cast<EThetaEntityEventKind>(Event.kind);
	Out.Entity = ThetaNet::Text::EntityToBlueprint(Event.entity);
	Out.Component = static_cast<int32>(Event.component);
	Out.Peer = Event.peer;
	Out.Tick = static_cast<int64>(Event.tick);
	if (const FName* Name = ComponentNames.Find(Event.component))
	{
		Out.ComponentName = *Name;
	}
	if (Event.data != nullptr && Event.data_len > 0)
	{
		// Bounded by the component type's maximum, which the library enforced.
		Out.Data.Append(Event.data, static_cast<int32>(Event.data_len));
	}

	// This peer's own entities come back from the host: their actors are the local ones.
	if (static_cast<int32>(ThetaNet::Text::EntityCreator(Event.entity)) != LocalPeer)
	{
		switch (Out.Kind)
		{
		case EThetaEntityEventKind::Spawn:
			if (!Entities.Contains(Event.entity))
			{
				PendingRemote.FindOrAdd(Event.entity);
			}
			break;
		case EThetaEntityEventKind::Insert:
		case EThetaEntityEventKind::Update:
			ApplyRemoteValue(Event.entity, Event.component, Out.Data);
			break;
		case EThetaEntityEventKind::Despawn:
		case EThetaEntityEventKind::Left:  // out of this client's interest: gone here only
			DestroyRemote(Event.entity);
			break;
		default:
			break;
		}
	}
	OnEntityEvent.Broadcast(Out);
}

void UThetaSubsystem::ApplyRemoteValue(uint64 Entity, uint32 Component, const TArray<uint8>& Data)
{
	const TWeakObjectPtr<UThetaReplicatedComponent>* Bound = Entities.Find(Entity);
	UThetaReplicatedComponent* Target = Bound != nullptr ? Bound->Get() : nullptr;
	if (Component == TransformComponent)
	{
		ThetaNet::Frames::FTransformValue Value;
		FTransform Transform;
		if (!ThetaNet::Frames::UnpackTransform(Data.GetData(), static_cast<size_t>(Data.Num()), Value)
			|| !ThetaNet::FromTransformValue(Value, GetUnitsPerMeter(), Transform))
		{
			UE_LOG(LogThetaNet, Verbose, TEXT("ThetaNet: unusable transform for entity %llu ignored"), Entity);
			return;
		}
		if (Target != nullptr)
		{
			Target->ApplyRemoteTransform(Transform);
		}
		else
		{
			FPendingRemote& Pending = PendingRemote.FindOrAdd(Entity);
			Pending.bHasTransform = true;
			Pending.Transform = Transform;
		}
	}
	else if (Component == ClassComponent)
	{
		if (Target != nullptr || !ThetaNet::Text::IsValidClassKey(Data.GetData(), static_cast<size_t>(Data.Num())))
		{
			return;
		}
		// FNAME_Find: a peer's text never adds to the name table; unknown keys stay None.
		const FString Key = Utf8ToString(Data.GetData(), static_cast<size_t>(Data.Num()));
		PendingRemote.FindOrAdd(Entity).ClassKey = FName(*Key, FNAME_Find);
		TrySpawnRemote(Entity);
	}
	else
	{
		for (const TPair<FName, uint32>& Blob : BlobComponents)
		{
			if (Blob.Value != Component)
			{
				continue;
			}
			if (Target != nullptr)
			{
				Target->ApplyRemoteBlob(Blob.Key, Data);
			}
			else
			{
				PendingRemote.FindOrAdd(Entity).Blobs.Add(Blob.Key, Data);
			}
			break;
		}
	}
}

void UThetaSubsystem::TrySpawnRemote(uint64 Entity)
{
	const FPendingRemote* Found = PendingRemote.Find(Entity);
	if (Found == nullptr || Found->ClassKey.IsNone())
	{
		return;
	}
	UClass* Class = ResolveClass(Found->ClassKey);
	UWorld* World = GetWorld();
	if (Class == nullptr || World == nullptr)
	{
		UE_LOG(LogThetaNet, Verbose, TEXT("ThetaNet: no class for key %s: entity %llu not shown"),
			*Found->ClassKey.ToString(), Entity);
		return;
	}
	FPendingRemote Pending = MoveTemp(PendingRemote.FindChecked(Entity));
	PendingRemote.Remove(Entity);

	const FTransform SpawnTransform = Pending.bHasTransform ? Pending.Transform : FTransform::Identity;
	AActor* Actor = World->SpawnActorDeferred<AActor>(Class, SpawnTransform, nullptr, nullptr,
		ESpawnActorCollisionHandlingMethod::AlwaysSpawn);
	if (Actor == nullptr)
	{
		return;
	}
	// Its UThetaReplicatedComponent (native or Blueprint-added) claims the entity in
	// BeginPlay, which FinishSpawning runs.
	SpawningRemote.Add(Actor, Entity);
	Actor->FinishSpawning(SpawnTransform);
	if (!Entities.Contains(Entity) && IsValid(Actor))
	{
		UThetaReplicatedComponent* Added = NewObject<UThetaReplicatedComponent>(Actor);
		Added->RegisterComponent();
		if (!Entities.Contains(Entity))
		{
			Entities.Add(Entity, Added);
			Added->BindRemote(Entity, ThetaNet::Text::EntityCreator(Entity));
		}
	}
	SpawningRemote.Remove(Actor);

	if (const TWeakObjectPtr<UThetaReplicatedComponent>* Bound = Entities.Find(Entity))
	{
		if (UThetaReplicatedComponent* Component = Bound->Get())
		{
			for (const TPair<FName, TArray<uint8>>& Blob : Pending.Blobs)
			{
				Component->ApplyRemoteBlob(Blob.Key, Blob.Value);
			}
		}
	}
}

void UThetaSubsystem::DestroyRemote(uint64 Entity)
{
	PendingRemote.Remove(Entity);
	const TWeakObjectPtr<UThetaReplicatedComponent>* Bound = Entities.Find(Entity);
	UThetaReplicatedComponent* Component = Bound != nullptr ? Bound->Get() : nullptr;
	if (Component != nullptr && Component->IsRemote())
	{
		if (AActor* Actor = Component->GetOwner())
		{
			Actor->Destroy();  // EndPlay unregisters it
		}
	}
	Entities.Remove(Entity);
}

// --- XR --------------------------------------------------------------------------------

int64 UThetaSubsystem::GetPoseTime() const
{
#if THETA_NET_WITH_OPENXR
	int64 DisplayTime = 0;
	if (FThetaNetXrClock::GetDisplayTime(DisplayTime))
	{
		return DisplayTime;
	}
#endif
	int64_t Now = 0;
	if (Session.id != 0)
	{
		theta_session_now(Session, &Now);
	}
	return Now;
}

void UThetaSubsystem::SyncXrClock()
{
#if THETA_NET_WITH_OPENXR
	const double Now = FPlatformTime::Seconds();
	if (Session.id == 0 || Now < NextClockSync)
	{
		return;
	}
	NextClockSync = Now + 10.0;
	int64 XrNow = 0;
	if (FThetaNetXrClock::GetNow(XrNow))
	{
		theta_session_set_xr_time(Session, XrNow);
	}
	else if (!bClockFromDisplayTime && FThetaNetXrClock::GetDisplayTime(XrNow))
	{
		// No conversion extension: the display time stands for now, once. Every local time
		// is then ahead by the runtime's prediction (a frame or two), which pushes and
		// samples share, so remote avatars only show that much later.
		theta_session_set_xr_time(Session, XrNow);
		bClockFromDisplayTime = true;
	}
#endif
}

bool UThetaSubsystem::PushDevicePose(uint8 Device, const FTransform& WorldPose, bool bTracked)
{
	ThetaPosef Pose;
	if (!IsConnected() || !ThetaNet::ToThetaPose(WorldPose, GetUnitsPerMeter(), Pose))
	{
		return false;
	}
	const uint64 Flags = bTracked ? ThetaNet::Frames::TrackedFlags : ThetaNet::Frames::ValidUntrackedFlags;
	if (theta_session_push_pose(Session, Device, &Pose, GetPoseTime(), Flags) != THETA_STATUS_OK)
	{
		UE_LOG(LogThetaNet, Verbose, TEXT("ThetaNet: pose of device %u refused: %s"), static_cast<uint32>(Device), *ThetaLastError());
		return false;
	}
	return true;
}

bool UThetaSubsystem::SampleDevicePose(int32 Peer, uint8 Device, FTransform& OutWorldPose, bool& bOutTracked) const
{
	if (!IsConnected() || Peer < 0 || Peer > 65535)
	{
		return false;
	}
	ThetaPosef Pose;
	uint64_t Flags = 0;
	if (theta_session_sample_pose(Session, static_cast<uint16_t>(Peer), Device, GetPoseTime(), &Pose, &Flags)
		!= THETA_STATUS_OK)
	{
		return false;
	}
	FTransform Transform;
	if (!ThetaNet::FromThetaPose(Pose, GetUnitsPerMeter(), Transform))
	{
		return false;
	}
	OutWorldPose = Transform;
	bOutTracked = (Flags & ThetaNet::Frames::TrackedFlags) == ThetaNet::Frames::TrackedFlags;
	return true;
}

void UThetaSubsystem::UpdateAvatars()
{
	const UThetaNetSettings* Settings = GetDefault<UThetaNetSettings>();
	UWorld* World = GetWorld();
	if (!IsConnected() || Settings->AvatarClass.IsNull() || World == nullptr)
	{
		return;
	}
	TArray<int32> Peers = RemotePeers.Array();
	if (!bIsHost)
	{
		Peers.AddUnique(HostPeer);
	}
	for (const int32 Peer : Peers)
	{
		const TWeakObjectPtr<AActor>* Existing = Avatars.Find(Peer);
		if (Peer == LocalPeer || (Existing != nullptr && Existing->IsValid()))
		{
			continue;
		}
		// An avatar appears with the peer's first head pose.
		FTransform Head;
		bool bTracked = false;
		if (!SampleDevicePose(Peer, 0, Head, bTracked))
		{
			continue;
		}
		UClass* Class = Settings->AvatarClass.LoadSynchronous();
		if (Class == nullptr)
		{
			return;
		}
		AActor* Avatar = World->SpawnActorDeferred<AActor>(Class, Head, nullptr, nullptr,
			ESpawnActorCollisionHandlingMethod::AlwaysSpawn);
		if (Avatar == nullptr)
		{
			continue;
		}
		Avatar->FinishSpawning(Head);
		UThetaAvatarComponent* Component = Avatar->FindComponentByClass<UThetaAvatarComponent>();
		if (Component == nullptr)
		{
			Component = NewObject<UThetaAvatarComponent>(Avatar);
			Component->RegisterComponent();
		}
		Component->Peer = Peer;
		Avatars.Add(Peer, Avatar);
	}
}
