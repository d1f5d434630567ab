// The stand-in's chats and contacts (whatsapp-standin.ts puts this script into its page): the few
// WhatsApp Web modules whatsapp-web.js 1.34.7 reads for getChats, getChatById, Chat.fetchMessages,
// sendSeen, Chat.sendStateTyping, getContacts, getNumberId, createGroup and GroupChat's
// addParticipants / removeParticipants. Chats are made by the messages the page
// sends and receives; received ones are unread until sendSeen. The stand-in's rule of who has
// WhatsApp is the simulated engine's (simulated-directory.ts): every number except those ending in
// 404. Runs inside the page, after `modules`, `Msg`, `Chat`, `createWid` and `me` are defined;
// defines `Dir`, which the page's send and receive paths call.
export const DIRECTORY_SCRIPT = `
  const Dir = (() => {
    const chats = new Map();
    const contacts = new Map();
    const msgById = new Map();
    const typing = [];
    const idOf = (w) => (typeof w === "string" ? w : w && w._serialized);
    const plain = (w) => ({ server: w.server, user: w.user, _serialized: w._serialized });
    const exists = (user) => /^[0-9]{6,16}$/.test(user) && !user.endsWith("404");

    const contact = (id, pushname) => {
      let c = contacts.get(id);
      if (!c) {
        const wid = createWid(id);
        c = { id: wid, pushname, name: undefined, isBusiness: false, isEnterprise: false, isContactBlocked: false };
        c.serialize = () => ({ id: plain(wid), pushname: c.pushname, name: c.name });
        contacts.set(id, c);
      }
      return c;
    };

    const chat = (id) => {
      let c = chats.get(id);
      if (c) return c;
      const wid = createWid(id);
      const msgs = [];
      c = {
        id: wid, t: 0, unreadCount: 0, mute: { expiration: 0 }, lastReceivedKey: undefined, msgList: msgs,
        get formattedTitle() {
          if (c.groupMetadata) return c.groupMetadata.subject;
          const person = contacts.get(id);
          return (person && (person.name || person.pushname)) || "+" + wid.user;
        },
        msgs: { getModelsArray: () => msgs.slice() },
        serialize: () => ({
          id: plain(wid), t: c.t, unreadCount: c.unreadCount, archive: false, pin: 0, isReadOnly: false,
          msgs: msgs.map((m) => m.id._serialized),
        }),
      };
      chats.set(id, c);
      if (wid.server === "c.us") contact(id);
      return c;
    };

    /** A message model (what Msg.get and chat.msgs hold): its fields, and serialize(). */
    const add = (chatId, data, unread) => {
      const c = chat(chatId);
      const model = { ...data, serialize: () => ({ ...data }) };
      c.msgList.push(model);
      msgById.set(data.id._serialized, model);
      c.t = data.t;
      c.lastReceivedKey = data.id;
      if (unread) c.unreadCount++;
      return model;
    };

    Msg.get = ((sent) => (key) => sent(key) || msgById.get(key))(Msg.get);
    Chat.get = (w) => chats.get(idOf(w));
    Chat.getModelsArray = () => [...chats.values()];
    const Contact = { getModelsArray: () => [...contacts.values()], find: async (w) => contact(idOf(w)) };
    modules.WAWebCollections.Contact = Contact;

    Object.assign(modules, {
      WAWebFindChatAction: { findOrCreateLatestChat: async (w) => ({ chat: chat(idOf(w)) }) },
      WAWebChatLoadMessages: { loadEarlierMsgs: async () => [] },
      WAWebUpdateUnreadChatAction: {
        sendSeen: async ({ chat: c }) => {
          c.unreadCount = 0;
        },
      },
      WAWebChatStateBridge: {
        sendChatStateComposing: async (w) => typing.push(idOf(w)),
        sendChatStateRecording: async () => {},
        sendChatStatePaused: async () => {},
      },
      WAWebQueryExistsJob: {
        queryWidExists: async (w) => (exists(w.user) ? { wid: plain(w) } : null),
      },
      WAWebApiContact: { getAlternateUserWid: () => null },
      WAWebContactGetters: {
        getIsMe: (c) => Boolean(me()) && c.id.user === me().phoneNumber,
        getIsUser: (c) => c.id.server === "c.us",
        getIsGroup: (c) => c.id.server === "g.us",
        getIsWAContact: () => true,
        getUserid: (c) => c.id.user,
        getVerifiedName: () => undefined,
        getVerifiedLevel: () => undefined,
        getStatusMute: () => false,
        getName: (c) => c.name,
        getShortName: (c) => c.name,
        getPushname: (c) => c.pushname,
        getIsEnterprise: () => false,
      },
      WAWebFrontendContactGetters: { getIsMyContact: (c) => Boolean(c.name) },
    });
    modules.WAWebWidFactory.createWidFromWidLike = (w) => createWid(idOf(w));

    // ---- groups: the page is the server too, so a change is answered as WhatsApp's server would ----
    const digits = (n) => Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => b % 10).join("");
    const participantsOf = () => {
      const byId = new Map();
      return {
        byId,
        get: (id) => byId.get(id),
        serialize: () =>
          [...byId.values()].map((p) => ({ id: plain(p.id), isAdmin: p.isAdmin, isSuperAdmin: p.isSuperAdmin })),
        add: (w, admin) => byId.set(w._serialized, { id: w, isAdmin: admin, isSuperAdmin: admin }),
      };
    };
    const meWid = () => createWid(me().phoneNumber + "@c.us");
    Object.assign(modules, {
      WAWebGroupCreateJob: {
        createGroup: async ({ title }, members) => {
          const g = chat("120363" + digits(12) + "@g.us");
          const participants = participantsOf();
          participants.add(meWid(), true);
          for (const { phoneNumber } of members) participants.add(phoneNumber, false);
          g.groupMetadata = {
            subject: title, owner: meWid(), creation: Math.floor(Date.now() / 1000), announce: false, participants,
            serialize: () => ({
              id: plain(g.id), subject: title, owner: plain(g.groupMetadata.owner),
              creation: g.groupMetadata.creation, announce: false, participants: participants.serialize(),
            }),
          };
          g.iAmAdmin = () => Boolean(participants.get(meWid()._serialized)?.isAdmin);
          g.t = Math.floor(Date.now() / 1000);
          return { wid: g.id, subject: title, participants: members.map(({ phoneNumber }) => ({ wid: phoneNumber })) };
        },
      },
      WAWebLidMigrationUtils: { toPn: (w) => w },
      WAWebGroupQueryJob: { queryAndUpdateGroupMetadataById: async () => {} },
      WAWebWidToJid: { widToGroupJid: (w) => w._serialized, widToUserJid: (w) => w._serialized },
      WASmaxGroupsAddParticipantsRPC: {
        sendAddParticipantsRPC: async ({ participantArgs, iqTo }) => {
          const { participants } = chats.get(iqTo).groupMetadata;
          const id = participantArgs[0].participantJid;
          const error = participants.get(id) ? "409" : undefined;
          if (!error) participants.add(createWid(id), false);
          const mixins = { name: "AddParticipantsParticipantAdded", value: { error } };
          return {
            name: "AddParticipantsResponseSuccess",
            value: {
              addParticipant: [
                {
                  addParticipantsParticipantAddedOrNonRegisteredWaUserParticipantErrorLidResponseMixinGroup: {
                    value: { addParticipantsParticipantMixins: mixins },
                  },
                },
              ],
            },
          };
        },
      },
      WAWebModifyParticipantsGroupAction: {
        removeParticipants: async (g, leaving) => {
          for (const p of leaving) g.groupMetadata.participants.byId.delete(p.id._serialized);
        },
      },
    });
    modules.WAWebCollections.GroupMetadata = { update: async () => {} };
    modules.WAWebApiContact.getCurrentLid = () => null;

    return {
      /** A message this page sent (WAWebSendMsgChatAction). */
      sent: (data) => add(data.id.remote, data, false),
      /** A message from the phone's side: unread, its sender a contact with a pushname. */
      received: (data) => {
        contact(data.from, "Contact " + data.from.split("@")[0].slice(-4));
        return add(data.from, data, true);
      },
      typing,
    };
  })();
`;
