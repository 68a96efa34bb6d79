# iq rules: unknown namespace -> service-unavailable; results are never answered.
user alice secret
login a alice
send a <iq type='get' id='u1' to='${DOMAIN}'><query xmlns='urn:example:unknown'/></iq>
expect a <iq type='error' id='u1'><error type='cancel'>\
       <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>
send a <iq type='result' id='u2' to='${DOMAIN}'/>
expect-none a iq
send a <iq type='get' id='v1' to='${DOMAIN}'><query xmlns='jabber:iq:version'/></iq>
expect a <iq type='result' id='v1'><query xmlns='jabber:iq:version'><name>Parley</name></query></iq>
