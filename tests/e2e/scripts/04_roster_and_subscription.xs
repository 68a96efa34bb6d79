# Roster push, each subscription transition, presence broadcast and probe.
user alice secret
user bob secret
login a alice
login b bob
send a <iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>
expect a <iq type='result' id='r0'><query xmlns='jabber:iq:roster' ver='*'/></iq>
send b <iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>
expect b <iq type='result' id='r0'/>
send a <presence/>
send b <presence/>
send a <iq type='set' id='r1'><query xmlns='jabber:iq:roster'>\
       <item jid='bob@${DOMAIN}' name='Bob'><group>Friends</group></item></query></iq>
expect-any a <iq type='set'><query xmlns='jabber:iq:roster'>\
       <item jid='bob@${DOMAIN}' name='Bob' subscription='none'><group>Friends</group></item>\
       </query></iq>
expect-any a <iq type='result' id='r1'/>
# none -> none + pending out
send a <presence to='bob@${DOMAIN}' type='subscribe'/>
expect-any a <iq type='set'><query xmlns='jabber:iq:roster'>\
       <item jid='bob@${DOMAIN}' subscription='none' ask='subscribe'/></query></iq>
expect-any b <presence from='alice@${DOMAIN}' type='subscribe'/>
# bob approves: alice none -> to, bob none -> from
send b <presence to='alice@${DOMAIN}' type='subscribed'/>
expect-any b <iq type='set'><query xmlns='jabber:iq:roster'>\
       <item jid='alice@${DOMAIN}' subscription='from'/></query></iq>
expect-any a <iq type='set'><query xmlns='jabber:iq:roster'>\
       <item jid='bob@${DOMAIN}' subscription='to'/></query></iq>
expect-any a <presence from='bob@${DOMAIN}' type='subscribed'/>
# bob's current presence follows the approval
expect-any a <presence from='${JID:b}'/>
# and a change is broadcast
send b <presence><show>away</show></presence>
expect-any a <presence from='${JID:b}'><show>away</show></presence>
# alice cancels: to -> none
send a <presence to='bob@${DOMAIN}' type='unsubscribe'/>
expect-any a <iq type='set'><query xmlns='jabber:iq:roster'>\
       <item jid='bob@${DOMAIN}' subscription='none'/></query></iq>
expect-any b <presence from='alice@${DOMAIN}' type='unsubscribe'/>
